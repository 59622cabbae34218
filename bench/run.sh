#!/usr/bin/env bash
# Treaty's benchmark scenarios on this machine, each compared within one run.
#
# Usage: bench/run.sh [BUILD_DIR]          (default ./build; needs bin/treatyd, bin/bank-participant,
#                                          bin/treaty and bin/treaty-bench, and jq; the saga
#                                          scenario also bin/order-participant)
# Environment: CONCURRENCY (64), DURATION (10 s), WARMUP (1 s), ACCOUNTS (1000 per bank),
#              SCENARIOS ("group-commit instances readmodel saga cluster"), LEASE_MS (6000, treatyd's
#              default lease), SAGA_CONCURRENCY (CONCURRENCY),
#              KEEP=1 keeps the work dir (data dirs, logs, JSON results).
#
# group-commit: two bank participants with large balances and treatyd (with --admin) on a fresh
#   data dir, `treaty-bench 2pc`; then treatyd again with --no-group-commit on another fresh data
#   dir. Prints a markdown table and writes it to bench/results/latest.md (replacing the file).
# instances: bank-a served by three instances (round robin), bank-b by one; `treaty-bench 2pc`
#   with all healthy, then one bank-a instance killed -9 and, once its lease has expired, the same
#   run again. Prints a markdown table and appends it to bench/results/latest.md.
# readmodel: the group-commit workload against treatyd with its read model and again with
#   --no-readmodel; reports the write throughput ratio and the largest projector lag seen.
# saga: one treatyd with the two banks and the three order services (examples/order); the 2PC
#   workload, then `treaty-bench saga` (3-step order sagas: reserve -> charge -> schedule, each
#   waited for to the end) against the same processes; reports sagas/s, latency percentiles and
#   the saga / 2PC ratios. Appends to bench/results/latest.md.
# cluster: bench/cluster.sh: the 2PC workload against one treatyd, then against a 3-node Raft
#   cluster (ratio 3-node / single), then kill -9 of the leader under light load, timed until the
#   first transaction submitted after the kill commits. Appends to bench/results/latest.md.
set -euo pipefail

BUILD_DIR=${1:-./build}
BIN=$(cd "$BUILD_DIR/bin" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
ACCOUNTS=${ACCOUNTS:-1000}
SCENARIOS=${SCENARIOS:-group-commit instances readmodel saga cluster}
SAGA_CONCURRENCY=${SAGA_CONCURRENCY:-$CONCURRENCY}
LEASE_MS=${LEASE_MS:-6000}
BALANCE=1000000000000  # per account; far more than any run can move

for b in treatyd bank-participant treaty treaty-bench; do
  [[ -x "$BIN/$b" ]] || { echo "error: $BIN/$b is missing; build it first" >&2; exit 2; }
done
if [[ " $SCENARIOS " == *" saga "* && ! -x "$BIN/order-participant" ]]; then
  echo "error: $BIN/order-participant is missing (saga scenario); build it first" >&2
  exit 2
fi
for tool in jq curl ss; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/treaty-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${KEEP:-0}" == 1 ]]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

COORD_PORT=$(free_port)
ADMIN_PORT=$(free_port)
COORD=127.0.0.1:$COORD_PORT
ADMIN=127.0.0.1:$ADMIN_PORT

BANK_PIDS=()
declare -A BANK_PID_OF  # instance name -> pid
accounts=$(seq 0 $((ACCOUNTS - 1)) | sed "s/.*/acct&=$BALANCE/" | paste -sd, -)

start_bank() {  # start_bank SERVICE INSTANCE: one bank-participant with its own port and data dir
  local port
  port=$(free_port)
  "$BIN/bank-participant" --service "$1" --listen "127.0.0.1:$port" --coordinator "$COORD" \
    --data-dir "$WORK/$2" --accounts "$accounts" --log-level warn >"$WORK/$2.log" 2>&1 &
  PIDS+=($!)
  BANK_PIDS+=($!)
  BANK_PID_OF[$2]=$!
  wait_port "$port" $! "$2"
}

stop_banks() {
  local pid
  for pid in "${BANK_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${BANK_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  BANK_PIDS=()
}

TREATYD_PID=
start_treatyd() {  # start_treatyd NAME [FLAGS...]
  local name=$1
  shift
  "$BIN/treatyd" --data-dir "$WORK/$name" --listen "$COORD" --admin "$ADMIN" --log-level warn "$@" \
    >"$WORK/$name.log" 2>&1 &
  TREATYD_PID=$!
  PIDS+=($TREATYD_PID)
  wait_port "$COORD_PORT" "$TREATYD_PID" "$name"
  # Ready when both services are registered: a probe transfer is answered (0 committed, 3 aborted)
  # instead of rejected (5).
  printf '{"branches":[{"service":"bank-a","op":"debit","payload":{"account":"acct0","amount":1}},'\
'{"service":"bank-b","op":"credit","payload":{"account":"acct0","amount":1}}]}' >"$WORK/probe.json"
  for _ in $(seq 1 100); do
    rc=0
    "$BIN/treaty" --coordinator "$COORD" submit 2pc -f "$WORK/probe.json" --wait >/dev/null 2>&1 || rc=$?
    [[ $rc == 0 || $rc == 3 ]] && return 0
    sleep 0.2
  done
  echo "error: the banks never registered with $name" >&2
  exit 1
}

stop_treatyd() {
  kill "$TREATYD_PID"
  wait "$TREATYD_PID" || true
}

bank_cpu_ticks() {  # user+system clock ticks of the running banks so far
  local total=0 pid
  for pid in "${BANK_PIDS[@]}"; do
    [[ -r "/proc/$pid/stat" ]] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

coordinator_tx() {  # transactions treatyd finished so far
  curl -fsS "http://$ADMIN/metrics" | awk '/^treaty_tx_total[{ ]/ {s += $NF} END {printf "%d", s}'
}

measure() {  # measure NAME: one treaty-bench run against the running treatyd -> $WORK/NAME.json
  local name=$1
  echo "== $name: treaty-bench 2pc --concurrency $CONCURRENCY --duration $DURATION" >&2
  local ticks0 tx0 ticks1 tx1
  ticks0=$(bank_cpu_ticks)
  tx0=$(coordinator_tx)
  "$BIN/treaty-bench" 2pc --coordinator "$COORD" --admin "$ADMIN" --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --warmup "$WARMUP" --accounts-per-bank "$ACCOUNTS" --output json \
    >"$WORK/$name.raw.json"
  ticks1=$(bank_cpu_ticks)
  tx1=$(coordinator_tx)
  # Participant CPU over the whole bench run (warm-up included) per transaction of that run.
  jq --argjson ticks $((ticks1 - ticks0)) --argjson tx $((tx1 - tx0)) --argjson hz "$(getconf CLK_TCK)" \
    '. + {banks_cpu_us_per_tx: (if $tx > 0 then $ticks / $hz * 1e6 / $tx else 0 end)}' \
    "$WORK/$name.raw.json" >"$WORK/$name.json"
  jq -c '{tx_per_s, committed, aborted, errors, latency_ms, coordinator, banks_cpu_us_per_tx,
          client_cpu_us_per_tx}' "$WORK/$name.json" >&2
}

run_case() {  # run_case NAME [TREATYD FLAGS...]: fresh treatyd, one measurement, stop
  local name=$1
  shift
  start_treatyd "$name" "$@"
  measure "$name"
  stop_treatyd
}

ratio_of() {  # ratio_of A B JQ_EXPR: the value in A.json over the value in B.json
  jq -rn --slurpfile a "$WORK/$1.json" --slurpfile b "$WORK/$2.json" \
    "(\$a[0] | $3) as \$x | (\$b[0] | $3) as \$y | if \$y == 0 then \"n/a\" else (\$x / \$y * 100 | round / 100 | tostring) + \"x\" end"
}

row() {  # row LABEL FILE
  jq -r --arg name "$1" '"| \($name) | \(.tx_per_s | floor) | \(.latency_ms.p50 * 100 | round / 100) | \(.latency_ms.p99 * 100 | round / 100) | \(.latency_ms.p999 * 100 | round / 100) | \(.coordinator.fsyncs_per_tx * 1000 | round / 1000) | \(.coordinator.cpu_us_per_tx | round) | \(.banks_cpu_us_per_tx | round) | \(.client_cpu_us_per_tx | round) | \(.aborted) | \(.errors) |"' "$2"
}

scenario_group_commit() {
  start_bank bank-a bank-a
  start_bank bank-b bank-b
  run_case group-commit-on
  run_case group-commit-off --no-group-commit
  stop_banks
  ratio() { ratio_of group-commit-on group-commit-off "$1"; }  # ON / OFF

  local report
  report=$(cat <<EOF
# treaty-bench: 2PC transfer, group commit ON vs OFF

Machine: $(nproc) CPUs, Linux $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ).
Workload: two bank participants on loopback, each transaction = debit 1 at bank-a + credit 1 at
bank-b, submit with wait (answered once the decision is durable); concurrency $CONCURRENCY,
$DURATION s measured after $WARMUP s warm-up, $ACCOUNTS accounts per bank. fsyncs/tx counts
treatyd's own (from /metrics); the participants fsync too, and all four processes (treatyd, two
banks, the load generator) share the same cores. CPU µs/tx: treatyd (its /metrics), both banks
together (/proc, whole run), the load generator (getrusage).

| treatyd | tx/s | p50 ms | p99 ms | p999 ms | fsyncs/tx | treatyd CPU µs/tx | banks CPU µs/tx | client CPU µs/tx | aborted | errors |
|---|---|---|---|---|---|---|---|---|---|---|
$(row "group commit ON" "$WORK/group-commit-on.json")
$(row "group commit OFF" "$WORK/group-commit-off.json")
| ON / OFF | $(ratio .tx_per_s) | $(ratio .latency_ms.p50) | $(ratio .latency_ms.p99) | $(ratio .latency_ms.p999) | $(ratio .coordinator.fsyncs_per_tx) | $(ratio .coordinator.cpu_us_per_tx) | $(ratio .banks_cpu_us_per_tx) | $(ratio .client_cpu_us_per_tx) | | |
EOF
)
  echo "$report"
  mkdir -p "$HERE/results"
  echo "$report" >"$HERE/results/latest.md"
  echo "written: $HERE/results/latest.md" >&2
}

instance_row() {  # instance_row LABEL NAME
  jq -r --arg name "$1" '"| \($name) | \(.tx_per_s | floor) | \(.latency_ms.p50 * 100 | round / 100) | \(.latency_ms.p99 * 100 | round / 100) | \(.coordinator.cpu_us_per_tx | round) | \(.banks_cpu_us_per_tx | round) | \(.committed) | \(.aborted) | \(.errors) |"' "$WORK/$2.json"
}

scenario_instances() {
  local i killed_ms left_ms
  for i in 1 2 3; do start_bank bank-a "bank-a-$i"; done
  start_bank bank-b bank-b-1
  start_treatyd instances --lease-ms "$LEASE_MS"
  "$BIN/treaty-bench" services --coordinator "$COORD" --service bank-a --live 3 >&2
  measure instances-healthy

  echo "== kill -9 bank-a-3; waiting until its lease ($LEASE_MS ms) has expired" >&2
  killed_ms=$(date +%s%3N)
  kill -9 "${BANK_PID_OF[bank-a-3]}"
  "$BIN/treaty-bench" services --coordinator "$COORD" --service bank-a --live 2 \
    --wait-ms $((2 * LEASE_MS + 10000)) >&2
  left_ms=$(( $(date +%s%3N) - killed_ms ))
  measure instances-one-dead
  stop_treatyd
  stop_banks
  ratio() { ratio_of instances-one-dead instances-healthy "$1"; }  # dead / healthy

  local report
  report=$(cat <<EOF

# treaty-bench: 2PC transfer, bank-a on three instances, one killed -9

Machine: $(nproc) CPUs, Linux $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ).
Workload: each transaction = debit 1 at bank-a + credit 1 at bank-b, submit with wait;
concurrency $CONCURRENCY, $DURATION s measured after $WARMUP s warm-up. bank-a is three
bank-participant processes (one service, round-robin balancing, each with its own RocksDB and
$ACCOUNTS accounts), bank-b is one; treatyd --lease-ms $LEASE_MS, default breakers. "1 dead" is
the same processes after bank-a-3 was killed -9. A dead instance stays registered until its lease
expires (counted from its last heartbeat; here ListServices showed it gone ${left_ms} ms after the
kill), and the second run starts only then: the ratio is the steady state with two instances
left, not the transition. The second run has one process fewer on the same 2 cores, which can
favour it. Load average (1, 5, 15 min) when the table was written: $(cut -d' ' -f1-3 /proc/loadavg).

| bank-a instances | tx/s | p50 ms | p99 ms | treatyd CPU µs/tx | banks CPU µs/tx | committed | aborted | errors |
|---|---|---|---|---|---|---|---|---|
$(instance_row "3 healthy" instances-healthy)
$(instance_row "2 healthy + 1 dead" instances-one-dead)
| dead / healthy | $(ratio .tx_per_s) | $(ratio .latency_ms.p50) | $(ratio .latency_ms.p99) | $(ratio .coordinator.cpu_us_per_tx) | $(ratio .banks_cpu_us_per_tx) | | | |
EOF
)
  echo "$report"
  mkdir -p "$HERE/results"
  echo "$report" >>"$HERE/results/latest.md"
  echo "appended: $HERE/results/latest.md" >&2
}

lag_sampler() {  # lag_sampler FILE: records the read model's lag (events seconds) every 0.5 s
  while true; do
    curl -fsS "http://$ADMIN/metrics" 2>/dev/null |
      awk '/^treaty_readmodel_lag_events / {e = $NF} /^treaty_readmodel_lag_seconds / {s = $NF}
           END {if (e != "") print e, s}' >>"$1"
    sleep 0.5
  done
}

scenario_readmodel() {
  start_bank bank-a bank-a
  start_bank bank-b bank-b
  start_treatyd readmodel-on
  : >"$WORK/lag.txt"
  lag_sampler "$WORK/lag.txt" &
  local sampler=$!
  measure readmodel-on
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  stop_treatyd
  run_case readmodel-off --no-readmodel
  stop_banks
  local max_events max_seconds
  max_events=$(awk 'BEGIN {m = 0} $1 > m {m = $1} END {printf "%d", m}' "$WORK/lag.txt")
  max_seconds=$(awk 'BEGIN {m = 0} $2 > m {m = $2} END {printf "%.2f", m}' "$WORK/lag.txt")
  local report
  report=$(cat <<EOF

## Read model: write throughput with the projector on vs off

Same workload as the group-commit table; treatyd with its read model (projector thread on) against
\`--no-readmodel\`. Largest projector lag sampled every 0.5 s during the run: $max_events events,
$max_seconds s.

| treatyd | tx/s | p50 ms | p99 ms | p999 ms | fsyncs/tx | treatyd CPU µs/tx | banks CPU µs/tx | client CPU µs/tx | aborted | errors |
|---|---|---|---|---|---|---|---|---|---|---|
$(row "projector on" "$WORK/readmodel-on.json")
$(row "projector off" "$WORK/readmodel-off.json")
| on / off | $(ratio_of readmodel-on readmodel-off .tx_per_s) | $(ratio_of readmodel-on readmodel-off .latency_ms.p50) | $(ratio_of readmodel-on readmodel-off .latency_ms.p99) | | | $(ratio_of readmodel-on readmodel-off .coordinator.cpu_us_per_tx) | | | | |
EOF
)
  echo "$report"
  mkdir -p "$HERE/results"
  echo "$report" >>"$HERE/results/latest.md"
  echo "appended: $HERE/results/latest.md" >&2
}

start_order_service() {  # start_order_service SERVICE [FLAGS...]: one order-participant
  local service=$1 port
  shift
  port=$(free_port)
  "$BIN/order-participant" --service "$service" --listen "127.0.0.1:$port" --coordinator "$COORD" \
    --data-dir "$WORK/$service" --log-level warn "$@" >"$WORK/$service.log" 2>&1 &
  PIDS+=($!)
  BANK_PIDS+=($!)  # stopped, and their CPU counted, with the banks
  wait_port "$port" $! "$service"
}

saga_row() {  # saga_row LABEL FILE RATE_FIELD DONE_FIELD NOT_DONE_FIELD
  jq -r --arg name "$1" --arg rate "$3" --arg done "$4" --arg nd "$5" \
    '"| \($name) | \(.[$rate] | floor) | \(.latency_ms.p50 * 100 | round / 100) | \(.latency_ms.p90 * 100 | round / 100) | \(.latency_ms.p99 * 100 | round / 100) | \(.latency_ms.p999 * 100 | round / 100) | \(.[$done]) | \(.[$nd]) | \(.errors) |"' "$2"
}

saga_ratio() {  # saga_ratio EXPR_IN_SAGA EXPR_IN_2PC: saga value over 2PC value
  jq -rn --slurpfile a "$WORK/saga-saga.json" --slurpfile b "$WORK/saga-2pc.json" \
    "(\$a[0] | $1) as \$x | (\$b[0] | $2) as \$y | if \$y == 0 then \"n/a\" else (\$x / \$y * 100 | round / 100 | tostring) + \"x\" end"
}

scenario_saga() {
  start_bank bank-a bank-a
  start_bank bank-b bank-b
  start_treatyd saga
  # Stock for every saga of the run (one widget each); the default credit limit is per charge.
  start_order_service inventory --stock widget=1000000000
  start_order_service payment
  start_order_service shipping
  local service
  for service in inventory payment shipping; do
    "$BIN/treaty-bench" services --coordinator "$COORD" --service "$service" --live 1 >&2
  done
  measure saga-2pc
  echo "== saga: treaty-bench saga --concurrency $SAGA_CONCURRENCY --duration $DURATION" >&2
  "$BIN/treaty-bench" saga --coordinator "$COORD" --concurrency "$SAGA_CONCURRENCY" \
    --duration "$DURATION" --warmup "$WARMUP" --output json >"$WORK/saga-saga.json"
  jq -c '{sagas_per_s, completed, not_completed, errors, latency_ms}' "$WORK/saga-saga.json" >&2
  stop_treatyd
  stop_banks

  local report
  report=$(cat <<EOF

## Sagas beside 2PC

Machine: $(nproc) CPUs, Linux $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ).
One treatyd (group commit, read model on) with bank-a, bank-b and the three order services
(examples/order) running throughout. 2PC: the group-commit workload (debit 1 at bank-a + credit 1
at bank-b), concurrency $CONCURRENCY. Saga: \`treaty-bench saga\`, 3-step order sagas (reserve 1
widget at inventory -> charge 1 at payment -> schedule at shipping, each step after the previous
one), submitted with wait and answered when COMPLETED; concurrency $SAGA_CONCURRENCY. Each run
$DURATION s measured after $WARMUP s warm-up, one after the other against the same processes.
A 2PC transaction is 2 parallel prepares + 2 commits and 3 log events; a saga is 3 sequential
actions and about 8 log events (begin, each step started and done, the end).

| mode | per s | p50 ms | p90 ms | p99 ms | p999 ms | done | not done | errors |
|---|---|---|---|---|---|---|---|---|
$(saga_row "2PC transfers" "$WORK/saga-2pc.json" tx_per_s committed aborted)
$(saga_row "3-step sagas" "$WORK/saga-saga.json" sagas_per_s completed not_completed)
| saga / 2PC | $(saga_ratio .sagas_per_s .tx_per_s) | $(saga_ratio .latency_ms.p50 .latency_ms.p50) | $(saga_ratio .latency_ms.p90 .latency_ms.p90) | $(saga_ratio .latency_ms.p99 .latency_ms.p99) | $(saga_ratio .latency_ms.p999 .latency_ms.p999) | | | |
EOF
)
  echo "$report"
  mkdir -p "$HERE/results"
  echo "$report" >>"$HERE/results/latest.md"
  echo "appended: $HERE/results/latest.md" >&2
}

for scenario in $SCENARIOS; do
  case $scenario in
    group-commit) scenario_group_commit ;;
    instances) scenario_instances ;;
    readmodel) scenario_readmodel ;;
    saga) scenario_saga ;;
    cluster) REPORT="$HERE/results/latest.md" CONCURRENCY=$CONCURRENCY DURATION=$DURATION \
               WARMUP=$WARMUP bash "$HERE/cluster.sh" "$BUILD_DIR" ;;
    *) echo "error: unknown scenario '$scenario' (expected group-commit, instances, readmodel, saga or cluster)" >&2; exit 2 ;;
  esac
done
