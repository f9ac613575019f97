#!/usr/bin/env python3
"""echo_paired.py: echo c100 CPU per round trip of two (or more) servers, interleaved.

  bench/echo_paired.py REPS NAME=CMD [NAME=CMD ...]

Each CMD is run as `CMD echo-server PORT` and must print one line when it listens (our
`asyncio_bench` and the anchors' servers do); a CMD whose last word ends in "-server" names its
own workload (`asyncio_bench echo-protocol-server`). As run-anchors.sh's echo-c100 "1-CPU"
column: the server and the anchors' load generator (LOADGEN, default
/tmp/anchor-bench-build/loadgen) both pinned to CPU 0, 100 connections, 64-byte messages, 1 s
warm-up, 3 s measured (WARM and SECS change them: shorter turns, more of them, follow a drifting
machine more closely; CONNS changes the number of connections). The systems take turns, REPS times, so that the machine's drift touches
them alike.

Per system it prints the median server CPU per round trip (the loadgen's figure), the split into
user and system time, and the server's voluntary and involuntary context switches per round
trip (both from /proc, read when the warm-up ends and when the load does); for two systems, the
median of the per-turn ratios.
Environment variables pass through (ASYNCIO_BACKEND=epoll selects our epoll engine).
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

LOADGEN = os.environ.get("LOADGEN", "/tmp/anchor-bench-build/loadgen")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid):
    """(user ticks, system ticks, voluntary switches, involuntary switches) of `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    switches = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                switches[key] = int(value)
    return (int(fields[11]), int(fields[12]), switches["voluntary_ctxt_switches"],
            switches["nonvoluntary_ctxt_switches"])


WARM = os.environ.get("WARM", "1")
SECS = os.environ.get("SECS", "3")
CONNS = os.environ.get("CONNS", "100")


def one_turn(cmd):
    port = free_port()
    workload = [] if cmd[-1].endswith("-server") else ["echo-server"]
    # taskset execs the server: its pid is the server's.
    srv = subprocess.Popen(["taskset", "-c", "0"] + cmd + workload + [str(port)],
                           stdout=subprocess.PIPE)
    load = None
    try:
        srv.stdout.readline()
        time.sleep(0.2)
        load = subprocess.Popen(["taskset", "-c", "0", LOADGEN, "127.0.0.1", str(port), CONNS,
                                 "64", WARM, SECS, str(srv.pid)], stdout=subprocess.PIPE)
        time.sleep(float(WARM))  # the warm-up
        before = proc_stat(srv.pid)
        out = load.communicate(timeout=60)[0].decode().strip().splitlines()[-1]
        after = proc_stat(srv.pid)
    finally:
        if load is not None and load.poll() is None:  # it timed out
            load.kill()
            load.wait()
        srv.kill()
        srv.wait()
    r = json.loads(out)
    trips = r["round_trips"]
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "us": r["server_cpu"] / r["rt_per_s"] * 1e6,
        "user": (after[0] - before[0]) / tick / trips * 1e6,
        "sys": (after[1] - before[1]) / tick / trips * 1e6,
        "vcs": (after[2] - before[2]) / trips,
        "ivcs": (after[3] - before[3]) / trips,
    }


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    reps = int(sys.argv[1])
    systems = [arg.split("=", 1) for arg in sys.argv[2:]]
    results = {name: [] for name, _ in systems}
    for _ in range(reps):
        for name, cmd in systems:
            results[name].append(one_turn(cmd.split()))
    for name, runs in results.items():
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        each = " ".join(f"{r['us']:.2f}" for r in runs)
        print(f"{name:12s} µs/RT {med('us'):.2f} [{each}]  user {med('user'):.2f} "
              f"sys {med('sys'):.2f}  voluntary switches/RT {med('vcs'):.4f} "
              f"involuntary {med('ivcs'):.4f}")
    if len(systems) == 2:
        a, b = systems[0][0], systems[1][0]
        ratios = sorted(x["us"] / y["us"] for x, y in zip(results[a], results[b]))
        print(f"paired {a}/{b}: median {statistics.median(ratios):.3f} "
              f"[{' '.join(f'{r:.2f}' for r in ratios)}]")


if __name__ == "__main__":
    main()
