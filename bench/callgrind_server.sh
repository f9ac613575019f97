#!/bin/bash
# callgrind_server.sh: user-space instructions per request (or round trip) of a server under
# load, counted by callgrind, with the functions that take them (exclusive counts, per request).
# Instruction counts do not depend on the machine's load, unlike the anchors' CPU times.
#
#   bench/callgrind_server.sh http|echo SERVER [ARGS...]
#
# SERVER ARGS... is run as `SERVER ARGS... http-server|echo-server PORT` and must print a line
# with "ready" when it listens (bench/asyncio_bench does; so do the anchors' systems, e.g.
# /tmp/anchor-bench-build/c-uring/bench). ASYNCIO_BACKEND picks our engine; TOP, how many
# functions to list (30). The load: http, `wrk -t1 -c100 -d8s`; echo, the anchors' loadgen
# (LOADGEN, default /tmp/anchor-bench-build/loadgen), 100 connections, 64 bytes, 6 s without
# warm-up. Counting starts after start-up (callgrind_control -z) and ends when the load does
# (callgrind_control -d).
set -euo pipefail
workload=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" "$workload-server" "$port" \
  >"$work/server.out" 2>"$work/server.err" &
pid=$!
for _ in $(seq 300); do grep -q ready "$work/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/server.out" || { echo "the server did not start" >&2; kill -9 $pid; exit 1; }
callgrind_control -z $pid >/dev/null 2>&1
if [[ $workload == http ]]; then
  wrk -t1 -c100 -d8s "http://127.0.0.1:$port/" >"$work/load.out" 2>&1
  ops=$(awk '/requests in/ {print $1}' "$work/load.out")
else
  # No warm-up: every round trip is counted, as callgrind counts every instruction.
  "${LOADGEN:-/tmp/anchor-bench-build/loadgen}" 127.0.0.1 $port 100 64 0 6 >"$work/load.out" 2>&1
  ops=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["round_trips"])' "$work/load.out")
fi
callgrind_control -d $pid >/dev/null 2>&1
sleep 1
{ kill -9 $pid && wait $pid; } 2>/dev/null || true  # quietly: no "Killed" line
python3 "$here/callgrind_exclusive.py" "$work"/cg.out.1 "$ops" "${TOP:-30}"
rm -rf "$work"
