#!/usr/bin/env python3
"""echo_paired.py: server CPU per round trip (echo c100) or per request (HTTP) of two or more
servers, interleaved.

  bench/echo_paired.py REPS NAME=CMD [NAME=CMD ...]

Each CMD is run as `CMD echo-server PORT` (with HTTP=1: `CMD http-server PORT`) and must print
one line when it listens (our `asyncio_bench` and the anchors' servers do); a CMD whose last
word ends in "-server" names its own workload (`asyncio_bench echo-protocol-server`).

The load, as run-anchors.sh's "1-CPU" columns, with the server and the client pinned to CPU 0:
- echo: the anchors' load generator (LOADGEN, default /tmp/anchor-bench-build/loadgen), 64-byte
  messages;
- HTTP=1: `wrk -t1` for WARM seconds, then for SECS seconds measured (whole seconds: wrk's).
100 connections (CONNS changes it), 1 s warm-up and 3 s measured (WARM and SECS change them:
shorter turns, more of them, follow a drifting machine more closely). The systems take turns,
REPS times, so that the machine's drift touches them alike.

Per system it prints the median server CPU per round trip or request (echo: the loadgen's
figure; HTTP: the server's /proc times over wrk's requests), the split into user and system
time, and the server's voluntary and involuntary context switches per operation (from /proc,
read when the warm-up ends and when the load does); for two systems, the median of the
per-turn ratios.
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
HTTP = os.environ.get("HTTP", "") not in ("", "0")


def wrk_requests(port, secs):
    """Runs wrk (pinned to CPU 0) for `secs` seconds, rounded to whole seconds as wrk takes
    them (at least 1); the number of requests it completed."""
    secs = max(1, round(float(secs)))
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c" + CONNS, "-d%ds" % secs,
                          "http://127.0.0.1:%d/" % port], capture_output=True, timeout=60,
                         check=True).stdout.decode()
    if "Socket errors" in out or "Non-2xx" in out:
        sys.exit("wrk reported errors:\n" + out)
    return int(next(line for line in out.splitlines() if "requests in" in line).split()[0])


def one_turn(cmd):
    port = free_port()
    workload = [] if cmd[-1].endswith("-server") else ["http-server" if HTTP else "echo-server"]
    # taskset execs the server: its pid is the server's.
    srv = subprocess.Popen(["taskset", "-c", "0"] + cmd + workload + [str(port)],
                           stdout=subprocess.PIPE)
    load = None
    try:
        srv.stdout.readline()
        time.sleep(0.2)
        if HTTP:
            wrk_requests(port, WARM)  # the warm-up
            before = proc_stat(srv.pid)
            ops = wrk_requests(port, SECS)
            after = proc_stat(srv.pid)
        else:
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
    tick = os.sysconf("SC_CLK_TCK")
    if HTTP:
        us = ((after[0] - before[0]) + (after[1] - before[1])) / tick / ops * 1e6
    else:
        r = json.loads(out)
        ops = r["round_trips"]
        us = r["server_cpu"] / r["rt_per_s"] * 1e6
    return {
        "us": us,
        "user": (after[0] - before[0]) / tick / ops * 1e6,
        "sys": (after[1] - before[1]) / tick / ops * 1e6,
        "vcs": (after[2] - before[2]) / ops,
        "ivcs": (after[3] - before[3]) / ops,
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
    unit = "req" if HTTP else "RT"
    for name, runs in results.items():
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        each = " ".join(f"{r['us']:.2f}" for r in runs)
        print(f"{name:12s} µs/{unit} {med('us'):.2f} [{each}]  user {med('user'):.2f} "
              f"sys {med('sys'):.2f}  voluntary switches/op {med('vcs'):.4f} "
              f"involuntary {med('ivcs'):.4f}")
    if len(systems) == 2:
        a, b = systems[0][0], systems[1][0]
        ratios = sorted(x["us"] / y["us"] for x, y in zip(results[a], results[b]))
        print(f"paired {a}/{b}: median {statistics.median(ratios):.3f} "
              f"[{' '.join(f'{r:.2f}' for r in ratios)}]")


if __name__ == "__main__":
    main()
