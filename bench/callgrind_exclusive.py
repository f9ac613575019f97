#!/usr/bin/env python3
"""Exclusive instruction counts per function from a callgrind output file, divided by a number
of operations (bench/callgrind_server.sh). callgrind_annotate 3.19 lists only (below main) for
a dump taken with callgrind_control -d, so the file is summed here.

    bench/callgrind_exclusive.py CALLGRIND_OUT OPS [TOP]
"""
import collections
import re
import sys


def main() -> None:
    path, ops = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    names: dict[str, str] = {}
    cost: collections.Counter[str] = collections.Counter()
    fn = None
    skip_next = False  # the cost line after calls= is the callee's inclusive cost

    def name(ref: str) -> str:
        m = re.match(r"\((\d+)\)(?: (.*))?", ref)
        if not m:
            return ref
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), ref)

    with open(path) as f:
        for line in f:
            if line.startswith("fn="):
                fn = name(line[3:].strip())
            elif line.startswith("cfn="):
                name(line[4:].strip())
            elif line.startswith("calls="):
                skip_next = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2 and fn is not None:
                    cost[fn] += int(parts[1])
    total = sum(cost.values())
    print(f"{ops} operations, {total / ops:,.0f} user-space instructions each")
    for f, c in cost.most_common(top):
        f = f.replace("(anonymous namespace)", "anon")
        print(f"{c / ops:9.1f}  {f[:140]}")


if __name__ == "__main__":
    main()
