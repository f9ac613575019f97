#!/bin/bash
# multicore_cpu.sh: CPU per round trip of examples/multicore_echo with --loops 2 against
# --loops 1, on a 2-CPU machine (issue 13's "multicore_echo --loops 2 on 2 CPUs: CPU per
# operation within 1.1x of one loop's").
#
#   bench/multicore_cpu.sh MULTICORE_ECHO LOADGEN [--backend epoll|io_uring] [--reps N]
#
# MULTICORE_ECHO: a Release build of examples/multicore_echo; LOADGEN: the anchors' loadgen
# (../shared/bench/harness/loadgen.c, built by run-anchors.sh in /tmp/anchor-bench-build).
# Nothing is pinned: the loops and two load generators (50 connections each, 64-byte ping-pong,
# 1 s warm-up, 4 s measured) share the machine's CPUs, which they saturate. The server's CPU
# (utime + stime of all its threads, /proc/PID/stat) and the whole machine's busy time
# (/proc/stat) are read over the measured window and divided by the round trips. One loop and
# two loops alternate, N times each; the last lines give the medians and the median of the
# per-repetition ratios (the machine's speed drifts between repetitions).
set -euo pipefail
bin=$1 loadgen=$2
shift 2
backend=epoll reps=5
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
tck=$(getconf CLK_TCK)
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }

# one LOOPS PORT -> "rt_per_s server_us machine_us"
one() {
  local loops=$1 port=$2
  "$bin" --port "$port" --loops "$loops" --backend "$backend" > /dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do
    ss -ltn "sport = :$port" | grep -q LISTEN && break
    sleep 0.1
  done
  "$loadgen" 127.0.0.1 "$port" 50 64 1 4 > "$out/a.json" 2>/dev/null &
  local a=$!
  "$loadgen" 127.0.0.1 "$port" 50 64 1 4 > "$out/b.json" 2>/dev/null &
  local b=$!
  sleep 1
  local b0 s0 t0 b1 s1 t1
  b0=$(busy); s0=$(awk '{print $14+$15}' "/proc/$pid/stat"); t0=$(date +%s.%N)
  sleep 4
  b1=$(busy); s1=$(awk '{print $14+$15}' "/proc/$pid/stat"); t1=$(date +%s.%N)
  wait "$a" "$b"
  kill -INT "$pid"; sleep 0.5; kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true
  python3 - "$out" "$tck" "$b0" "$b1" "$s0" "$s1" "$t0" "$t1" << 'PY'
import json, sys
out, tck = sys.argv[1], float(sys.argv[2])
b0, b1, s0, s1, t0, t1 = map(float, sys.argv[3:])
rts = sum(json.load(open(f"{out}/{n}.json"))["rt_per_s"] for n in ("a", "b"))
n = rts * (t1 - t0)
print(f"{rts:.0f} {(s1 - s0) / tck * 1e6 / n:.2f} {(b1 - b0) / tck * 1e6 / n:.2f}")
PY
}

port=$((20000 + RANDOM % 20000))
for i in $(seq "$reps"); do
  for loops in 1 2; do
    r=$(one "$loops" "$port")
    echo "$i $loops $r" >> "$out/runs"
    read -r rts srv mach <<< "$r"
    printf 'rep %d  --loops %d  %s  %8s RT/s  server %6s us/RT  machine %6s us/RT\n' \
      "$i" "$loops" "$backend" "$rts" "$srv" "$mach"
    port=$((port + 1))
  done
done
python3 - "$out/runs" << 'PY'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1])]
by = {}
for rep, loops, rts, srv, mach in runs:
    by.setdefault(loops, {})[rep] = (float(rts), float(srv), float(mach))
for loops in ("1", "2"):
    v = list(by[loops].values())
    print(f"median --loops {loops}: {statistics.median(x[0] for x in v):.0f} RT/s, server "
          f"{statistics.median(x[1] for x in v):.2f} us/RT, machine {statistics.median(x[2] for x in v):.2f} us/RT")
for k, name in ((1, "server"), (2, "machine")):
    r = [by["2"][i][k] / by["1"][i][k] for i in by["1"] if i in by["2"]]
    print(f"{name} CPU per RT, --loops 2 / --loops 1: median {statistics.median(r):.3f} "
          f"({' '.join(f'{x:.2f}' for x in r)})")
PY
