#!/usr/bin/env bash
# The cluster benchmark (bench/run.sh scenario "cluster", or on its own):
#   1. 2PC throughput of a single treatyd, then of a 3-node Raft cluster on the same machine, same
#      workload (two bank participants, treaty-bench 2pc): the ratio 3-node / single.
#   2. Failover: under a light load, kill -9 the leader and time until the first transaction
#      submitted after the kill is committed (the CLI finds the new leader by itself). Repeated
#      FAILOVERS times (the killed node restarts in between).
# Usage: bench/cluster.sh [BUILD_DIR]   Environment: CONCURRENCY (64), DURATION (10), WARMUP (1),
#        FAILOVERS (3), ELECTION_MS (500, treatyd --election-timeout-ms), NODE_LOG_LEVEL (warn),
#        KEEP=1 (keep the work dir with every process log), REPORT (file to
#        append the markdown table to; default bench/results/latest.md).
set -euo pipefail

BUILD_DIR=${1:-./build}
BIN=$(cd "$BUILD_DIR/bin" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
FAILOVERS=${FAILOVERS:-3}
ELECTION_MS=${ELECTION_MS:-500}
REPORT=${REPORT:-$HERE/results/latest.md}
ACCOUNTS=1000
BALANCE=1000000000000

for b in treatyd bank-participant treaty treaty-bench; do
  [[ -x "$BIN/$b" ]] || { echo "error: $BIN/$b is missing; build it first" >&2; exit 2; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/treaty-bench-cluster.XXXXXX")
declare -A PID_OF
cleanup() {
  for pid in "${PID_OF[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${KEEP:-0}" == 1 ]]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
now_ms() { date +%s%3N; }

accounts=$(seq 0 $((ACCOUNTS - 1)) | sed "s/.*/acct&=$BALANCE/" | paste -sd, -)
printf '{"branches":[{"service":"bank-a","op":"debit","payload":{"account":"acct0","amount":1}},'\
'{"service":"bank-b","op":"credit","payload":{"account":"acct1","amount":1}}]}' >"$WORK/one.json"

start_banks() {  # start_banks COORDINATORS
  local svc port
  for svc in bank-a bank-b; do
    port=$(free_port)
    "$BIN/bank-participant" --service "$svc" --listen "127.0.0.1:$port" --coordinator "$1" \
      --data-dir "$WORK/$svc-$RANDOM" --accounts "$accounts" --log-level warn >>"$WORK/$svc.log" 2>&1 &
    PID_OF[$svc]=$!
    wait_port "$port" $! "$svc"
  done
}
stop_banks() {
  for svc in bank-a bank-b; do kill "${PID_OF[$svc]}" 2>/dev/null || true; unset "PID_OF[$svc]"; done
  sleep 0.3
}
wait_ready() {  # wait_ready COORDINATORS: a probe transfer is answered
  for _ in $(seq 1 150); do
    rc=0
    "$BIN/treaty" --coordinator "$1" --timeout-ms 2000 submit 2pc -f "$WORK/one.json" --wait >/dev/null 2>&1 || rc=$?
    [[ $rc == 0 || $rc == 3 ]] && return 0
    sleep 0.2
  done
  echo "error: $1 never accepted transfers" >&2
  exit 1
}
coord_ticks() {  # user+system clock ticks of every running treatyd so far
  local total=0 name
  for name in "${!PID_OF[@]}"; do
    [[ $name == bank-* ]] && continue
    [[ -r "/proc/${PID_OF[$name]}/stat" ]] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/${PID_OF[$name]}/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
bench() {  # bench NAME COORDINATORS ADMIN
  echo "== $1: treaty-bench 2pc --concurrency $CONCURRENCY --duration $DURATION" >&2
  local t0 t1
  t0=$(coord_ticks)
  "$BIN/treaty-bench" 2pc --coordinator "$2" --admin "$3" --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --warmup "$WARMUP" --accounts-per-bank "$ACCOUNTS" --output json \
    >"$WORK/$1.raw.json"
  t1=$(coord_ticks)
  # CPU of every treatyd process over the whole run (warm-up included) per committed transaction.
  jq --argjson ticks $((t1 - t0)) --argjson hz "$(getconf CLK_TCK)" \
    '. + {all_nodes_cpu_us_per_tx: (if .committed > 0 then $ticks / $hz * 1e6 / (.committed * (1 + '"$WARMUP"' / '"$DURATION"')) else 0 end)}' \
    "$WORK/$1.raw.json" >"$WORK/$1.json"
  jq -c '{tx_per_s, committed, aborted, errors, latency_ms, leader_cpu_us_per_tx: .coordinator.cpu_us_per_tx, all_nodes_cpu_us_per_tx}' "$WORK/$1.json" >&2
}

# ---- 1. single node
port=$(free_port); admin_port=$(free_port)
SINGLE=127.0.0.1:$port
"$BIN/treatyd" --data-dir "$WORK/single" --listen "$SINGLE" --admin "127.0.0.1:$admin_port" \
  --log-level warn >"$WORK/single.log" 2>&1 &
PID_OF[single]=$!
wait_port "$port" "${PID_OF[single]}" single
start_banks "$SINGLE"
wait_ready "$SINGLE"
bench single "$SINGLE" "127.0.0.1:$admin_port"
stop_banks
kill "${PID_OF[single]}"; wait "${PID_OF[single]}" 2>/dev/null || true; unset "PID_OF[single]"

# ---- 2. three nodes
declare -a CLIENT ADMIN RAFT
for i in 1 2 3; do CLIENT[$i]=$(free_port); ADMIN[$i]=$(free_port); RAFT[$i]=$(free_port); done
PEERS="1=127.0.0.1:${RAFT[1]},2=127.0.0.1:${RAFT[2]},3=127.0.0.1:${RAFT[3]}"
LIST="127.0.0.1:${CLIENT[1]},127.0.0.1:${CLIENT[2]},127.0.0.1:${CLIENT[3]}"
start_node() {
  "$BIN/treatyd" --node-id "$1" --raft "127.0.0.1:${RAFT[$1]}" --peers "$PEERS" \
    --listen "127.0.0.1:${CLIENT[$1]}" --admin "127.0.0.1:${ADMIN[$1]}" \
    --data-dir "$WORK/node-$1" --election-timeout-ms "$ELECTION_MS" --log-level "${NODE_LOG_LEVEL:-warn}" \
    >>"$WORK/node-$1.log" 2>&1 &
  PID_OF[node$1]=$!
}
leader() {  # the node whose /readyz answers 200
  for i in 1 2 3; do
    if curl -fs -m 1 "http://127.0.0.1:${ADMIN[$i]}/readyz" >/dev/null 2>&1; then echo "$i"; return 0; fi
  done
  return 1
}
for i in 1 2 3; do start_node "$i"; done
for i in 1 2 3; do wait_port "${CLIENT[$i]}" "${PID_OF[node$i]}" "node-$i"; done
start_banks "$LIST"
wait_ready "$LIST"
L=$(leader)
bench cluster3 "$LIST" "127.0.0.1:${ADMIN[$L]}"

# ---- 3. failover under a light background load
"$BIN/treaty-bench" 2pc --coordinator "$LIST" --concurrency 4 --duration 600 --warmup 0 \
  --accounts-per-bank "$ACCOUNTS" --output json >"$WORK/background.json" 2>/dev/null &
BG=$!
: >"$WORK/failover.txt"
for k in $(seq 1 "$FAILOVERS"); do
  sleep 2
  L=$(leader) || { echo "error: no leader before failover $k" >&2; exit 1; }
  kill -9 "${PID_OF[node$L]}"
  { wait "${PID_OF[node$L]}"; } 2>/dev/null || true
  t0=$(now_ms)
  # The first transaction submitted after the kill that commits (the CLI retries the same xid
  # across nodes until one leads).
  "$BIN/treaty" --coordinator "$LIST" --timeout-ms 30000 submit 2pc -f "$WORK/one.json" \
    --xid "failover-$k-$t0" --wait >/dev/null
  t1=$(now_ms)
  echo "failover $k: node $L killed, first commit after $((t1 - t0)) ms" >&2
  echo "$((t1 - t0))" >>"$WORK/failover.txt"
  start_node "$L"
  wait_port "${CLIENT[$L]}" "${PID_OF[node$L]}" "node-$L"
done
kill "$BG" 2>/dev/null || true

ratio=$(jq -rn --slurpfile a "$WORK/cluster3.json" --slurpfile b "$WORK/single.json" \
  '($a[0].tx_per_s / $b[0].tx_per_s * 100 | round / 100 | tostring) + "x"')
p50ratio=$(jq -rn --slurpfile a "$WORK/cluster3.json" --slurpfile b "$WORK/single.json" \
  '($a[0].latency_ms.p50 / $b[0].latency_ms.p50 * 100 | round / 100 | tostring) + "x"')
failovers=$(paste -sd, "$WORK/failover.txt" | sed 's/,/ ms, /g')
median=$(sort -n "$WORK/failover.txt" | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
row() { jq -r --arg n "$1" '"| \($n) | \(.tx_per_s | floor) | \(.latency_ms.p50 * 100 | round / 100) | \(.latency_ms.p99 * 100 | round / 100) | \(.coordinator.cpu_us_per_tx | round) | \(.all_nodes_cpu_us_per_tx | round) | \(.committed) | \(.errors) |"' "$WORK/$2.json"; }
cpu_ratio() { jq -rn --slurpfile a "$WORK/cluster3.json" --slurpfile b "$WORK/single.json" "(\$a[0] | $1) / (\$b[0] | $1) * 100 | round / 100 | tostring + \"x\""; }
report=$(cat <<EOF

## Coordinator cluster: 3 Raft nodes vs a single node, and leader failover

Machine: $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ). Same 2PC workload (two banks, concurrency
$CONCURRENCY, $DURATION s after $WARMUP s warm-up). All three treatyd nodes, both banks and the load
generator share the same cores, so the cluster pays for two extra replicas' CPU here; on separate
machines the cost is the Raft round trip. Election timeout $ELECTION_MS ms.

| coordinator | tx/s | p50 ms | p99 ms | leader CPU µs/tx | all treatyd CPU µs/tx | committed | errors |
|---|---|---|---|---|---|---|---|
$(row "single node" single)
$(row "3-node cluster" cluster3)
| 3-node / single | $ratio | $p50ratio | | $(cpu_ratio .coordinator.cpu_us_per_tx) | $(cpu_ratio .all_nodes_cpu_us_per_tx) | | |

The machine is CPU-bound: the cluster's throughput follows the CPU all three nodes spend per
transaction (every node applies every entry and runs its own read model), while the leader's own
cost per transaction is what bounds a cluster whose nodes have cores of their own.

Failover (kill -9 of the leader under a light load, until the first transaction submitted after
the kill commits on the new leader): ${failovers} ms; median ${median} ms.
EOF
)
echo "$report"
mkdir -p "$(dirname "$REPORT")"
echo "$report" >>"$REPORT"
echo "appended: $REPORT" >&2
