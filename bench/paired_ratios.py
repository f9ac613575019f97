#!/usr/bin/env python3
"""Per-repetition ratios of one system to another from a run-anchors.sh JSON file.

The VM this project measures on changes speed by up to 1.5x within minutes, and run-anchors.sh
runs the systems of one repetition back to back (in shuffled order). A ratio taken inside each
repetition and then the median over the repetitions is steadier than the ratio of two medians.

usage: bench/paired_ratios.py RESULTS.json SYSTEM ANCHOR [WORKLOAD ...]
       (default workloads: every one both systems ran; fields: server CPU per op and p50)
"""
import json
import statistics
import sys


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    path, system, anchor = sys.argv[1:4]
    results = json.load(open(path))["results"]
    ours, theirs = results[system], results[anchor]
    workloads = sys.argv[4:] or [w for w in ours if w in theirs]
    for w in workloads:
        for field in ("server_cpu_us_per_op", "p50_us"):
            pairs = [(a.get(field), b.get(field)) for a, b in zip(ours[w], theirs[w])]
            ratios = [a / b for a, b in pairs if a and b]
            if not ratios:
                continue
            each = " ".join(f"{r:.2f}" for r in ratios)
            print(f"{w:10} {field:22} median {statistics.median(ratios):.3f}  ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
