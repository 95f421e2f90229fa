#!/usr/bin/env bash
# make bench: the server's real TLS application (the production listener:
# HTTP/1.1 and HTTP/2, every limit) on loopback, driven by h2load (nghttp2's
# load generator, a client we did not write) with keep-alive connections:
# server pinned to core 0 (one worker thread), h2load to core 1 (one thread).
# Rows: HTTP/1.1 at 1, 16 and 64 connections, HTTP/2 at 4 connections x 16
# streams. Then the admission logic alone (in process), then the agent's binary
# size and idle footprint.
#
#   BENCH_SECONDS  seconds per row (default 10)
#   BENCH_PORT     loopback port (default 18443)
#   BENCH_ROWS     rows to run, e.g. "h2:4:16 h1:64:1" (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${BENCH_SECONDS:-10}
PORT=${BENCH_PORT:-18443}
ROWS=${BENCH_ROWS:-"h1:1:1 h1:16:1 h1:64:1 h2:4:16"}
command -v h2load >/dev/null || { echo "bench: h2load not found: apt-get install nghttp2-client (tests/cluster/install-deps.sh does)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "bench: WARNING: one CPU only; the server and h2load share it" >&2
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
"$bin" body --out "$work/review.json"
clk=$(getconf CLK_TCK)
# utime + stime of every thread, in clock ticks.
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

# The answer is a patch, over both protocols (h2load checks status codes only).
for proto in --http1.1 --http2; do
  answer=$(curl -sS --cacert "$work/ca.pem" --resolve "localhost:$PORT:127.0.0.1" "$proto" \
    -H 'Content-Type: application/json' --data-binary "@$work/review.json" \
    -w ' %{http_version}' "https://localhost:$PORT/mutate")
  grep -q '"patchType":"JSONPatch"' <<<"$answer" || { echo "bench: no patch in the answer over $proto: $answer" >&2; exit 1; }
  echo "answer over HTTP/${answer##* }: a JSON patch of $(wc -c <<<"$answer") bytes"
done

echo
echo "Admission (pod AdmissionReview of $(stat -c %s "$work/review.json") bytes, 3 containers, captured job pod), ${SECONDS_EACH}s each"
echo "server: 1 worker thread pinned to core 0; h2load $(h2load --version | awk '{print $2; exit}'): 1 thread pinned to core 1"
echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| protocol | connections × streams | admissions/s | p50 ms | p99 ms | max ms | server CPU µs/admission | server CPU % | h2load CPU % | server peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
warnings=()
for row in $ROWS; do
  IFS=: read -r proto conns streams <<<"$row"
  args=(-t 1 -c "$conns" -m "$streams" -D "$SECONDS_EACH" -d "$work/review.json" -H 'content-type: application/json'
        --log-file="$work/h2load.log")
  case "$proto" in
    h1) label=HTTP/1.1; args+=(--h1) ;;
    h2) label=HTTP/2; args+=(--npn-list=h2) ;;
    *) echo "bench: unknown protocol in BENCH_ROWS: $proto" >&2; exit 2 ;;
  esac
  rm -f "$work/h2load.log"
  echo 5 >"/proc/$server_pid/clear_refs" # resets the peak RSS (VmHWM) for this row
  before=$(cpu "$server_pid")
  # h2load's own CPU: its parent shell's children times once it has exited.
  H2LOAD_OUT="$work/h2load.out" taskset -c 1 bash -c \
    'h2load "$@" >"$H2LOAD_OUT" 2>&1; awk "{print \$16+\$17}" /proc/$$/stat >"$H2LOAD_OUT.cpu"' _ "${args[@]}" \
    "https://127.0.0.1:$PORT/mutate"
  after=$(cpu "$server_pid")
  out="$work/h2load.out"
  grep -q '^requests:' "$out" || { cat "$out" >&2; exit 1; }
  read -r done ok failed <<<"$(awk '/^requests:/{print $6, $8, $10}' "$out")"
  status2xx=$(awk '/^status codes:/{print $3}' "$out")
  [ "$failed" = 0 ] && [ "$status2xx" = "$ok" ] || warnings+=("$label ${conns}x${streams}: $failed failed, $status2xx of $ok answered 2xx")
  rps=$(awk -v n="$status2xx" -v s="$SECONDS_EACH" 'BEGIN{printf "%.0f", n/s}')
  lat=$(awk '{print $3}' "$work/h2load.log" | sort -n | awk '{a[NR]=$1} END{
        if (NR == 0) {print "- - -"; exit}
        p50=a[int(NR*0.50) > 0 ? int(NR*0.50) : 1]; p99=a[int(NR*0.99) > 0 ? int(NR*0.99) : 1];
        printf "%.3f %.3f %.3f", p50/1000, p99/1000, a[NR]/1000}')
  read -r p50 p99 max <<<"$lat"
  server_pct=$(awk -v a="$after" -v b="$before" -v t="$clk" -v s="$SECONDS_EACH" 'BEGIN{printf "%.0f", (a-b)/t/s*100}')
  per=$(awk -v a="$after" -v b="$before" -v t="$clk" -v n="$status2xx" 'BEGIN{if (n > 0) printf "%.1f", (a-b)/t*1e6/n; else print "-"}')
  load_pct=$(awk -v c="$(cat "$out.cpu")" -v t="$clk" -v s="$SECONDS_EACH" 'BEGIN{printf "%.0f", c/t/s*100}')
  rss=$(awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$server_pid/status")
  echo "| $label | $conns × $streams | $rps | $p50 | $p99 | $max | $per | $server_pct | $load_pct | $rss |"
  # A row where h2load's core is busier than the server's measures h2load.
  if [ "$load_pct" -ge 90 ] && [ "$server_pct" -lt 90 ]; then
    warnings+=("$label ${conns}x${streams}: h2load used ${load_pct}% of its core and the server ${server_pct}%: the load generator, not the server, is the limit of this row")
  elif [ "$conns" -gt 1 ] && [ "$load_pct" -lt 90 ] && [ "$server_pct" -lt 90 ]; then
    warnings+=("$label ${conns}x${streams}: neither the server (${server_pct}%) nor h2load (${load_pct}%) filled its core: other processes share the cores (load average $(cut -d' ' -f1 /proc/loadavg)), so throughput and latency are pessimistic; CPU per admission holds")
  fi
done
for w in "${warnings[@]}"; do echo "WARNING: $w"; done
echo
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

echo
taskset -c 0 "$bin" pure

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
