#!/usr/bin/env bash
# make bench: admission over TLS with keep-alive (server pinned to core 0,
# load generator to core 1), then the agent's binary size and idle footprint.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${BENCH_SECONDS:-10}
PORT=${BENCH_PORT:-18443}
cargo build --release --locked -p lifecycle-bench 2>&1 | tail -1
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target x86_64-unknown-linux-gnu -p lifecycle-agent 2>&1 | tail -1
bin=target/release/lifecycle-bench
work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

taskset -c 0 "$bin" serve --listen "127.0.0.1:$PORT" --ca-out "$work/ca.pem" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/ca.pem" ] && break; sleep 0.1; done
sleep 0.5
clk=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$server_pid/stat"; }

echo "Admission (pod AdmissionReview of $("$bin" load --ca "$work/ca.pem" --print-size) bytes, 3 containers, captured job pod), ${SECONDS_EACH}s each"
echo "server: 1 worker thread pinned to core 0; load: core 1"
echo
echo "| conns |  admissions/s | p50 ms | p99 ms | max ms | server CPU % |"
echo "|------:|-----------:|---------:|---------:|---------:|------:|"
for c in 1 16 64; do
  before=$(cpu)
  row=$(taskset -c 1 "$bin" load --addr "127.0.0.1:$PORT" --ca "$work/ca.pem" --connections "$c" --seconds "$SECONDS_EACH")
  after=$(cpu)
  pct=$(awk -v a="$after" -v b="$before" -v t="$clk" -v s="$SECONDS_EACH" 'BEGIN{printf "%.0f", (a-b)/t/s*100}')
  echo "$row $pct |"
done
echo
echo "server peak RSS: $(awk '/VmHWM/{print $2, $3}' "/proc/$server_pid/status")"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

agent=target/x86_64-unknown-linux-gnu/release/lifecycle-agent
echo
echo "agent: static stripped binary $(stat -c %s "$agent") bytes ($(awk -v b="$(stat -c %s "$agent")" 'BEGIN{printf "%.2f", b/1048576}') MiB)"
mkdir -p "$work/out"
LIFECYCLE_OUTPUT_FILE="$work/out/qovery-output.json" LIFECYCLE_TOKEN_FILE="$work/token" \
LIFECYCLE_SERVER_URL="https://127.0.0.1:1" LIFECYCLE_SERVER_CA="" "$agent" run 2>"$work/agent.log" &
apid=$!
sleep 2
t0=$(awk '{print $14+$15}' "/proc/$apid/stat")
sleep 10
t1=$(awk '{print $14+$15}' "/proc/$apid/stat")
rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$apid/status")
echo "agent idle: RSS $rss_kb kB, CPU ticks over 10 s idle: $((t1 - t0))"
kill -TERM "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true
# The agent runs in every job pod: its binary and idle RSS stay within 4 MiB each.
if [ "$(stat -c %s "$agent")" -le $((4 * 1048576)) ] && [ "$rss_kb" -le 4096 ]; then
  echo "agent budget (4 MiB binary, 4 MiB idle RSS): ok"
else
  echo "agent budget (4 MiB binary, 4 MiB idle RSS): EXCEEDED" >&2
  exit 1
fi
