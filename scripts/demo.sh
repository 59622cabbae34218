#!/usr/bin/env bash
# The demo on a fresh Debian 12 machine: installs dependencies, builds, starts a coordinator and
# two bank participants on loopback, submits one transfer that commits and one that aborts for
# insufficient funds, prints the balances, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh treatyd treaty bank-participant
BIN=$PWD/${BUILD_DIR:-build}/bin

WORK=$(mktemp -d /tmp/treaty-demo.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
COORD=127.0.0.1:$(free_port)
BANK_A=127.0.0.1:$(free_port)
BANK_B=127.0.0.1:$(free_port)

echo "== starting treatyd on $COORD and two bank participants"
"$BIN/treatyd" --data-dir "$WORK/coordinator" --listen "$COORD" --log-level warn &
PIDS+=($!)
# The coordinator is up once it answers (here: "no such transaction", exit code 5).
for _ in $(seq 100); do
  rc=0; "$BIN/treaty" --coordinator "$COORD" tx get probe >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 5 ] && break
  sleep 0.1
done
"$BIN/bank-participant" --service bank-a --listen "$BANK_A" --coordinator "$COORD" \
  --data-dir "$WORK/bank-a" --accounts alice=100 --log-level warn &
PIDS+=($!)
"$BIN/bank-participant" --service bank-b --listen "$BANK_B" --coordinator "$COORD" \
  --data-dir "$WORK/bank-b" --accounts bob=50 --log-level warn &
PIDS+=($!)

cat > "$WORK/transfer.json" <<'JSON'
{"branches":[
  {"service":"bank-a","op":"debit","payload":{"account":"alice","amount":30}},
  {"service":"bank-b","op":"credit","payload":{"account":"bob","amount":30}}]}
JSON
cat > "$WORK/too-much.json" <<'JSON'
{"branches":[
  {"service":"bank-a","op":"debit","payload":{"account":"alice","amount":500}},
  {"service":"bank-b","op":"credit","payload":{"account":"bob","amount":500}}]}
JSON
# The banks register with the coordinator as soon as they listen.
for _ in $(seq 100); do
  if "$BIN/bank-participant" balances --listen "$BANK_A" >/dev/null 2>&1 &&
     "$BIN/bank-participant" balances --listen "$BANK_B" >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
sleep 0.3

show_balances() {
  echo "   bank-a: $("$BIN/bank-participant" balances --listen "$BANK_A" --output json)"
  echo "   bank-b: $("$BIN/bank-participant" balances --listen "$BANK_B" --output json)"
}
echo "== balances before"
show_balances

echo "== transfer 30 from alice (bank-a) to bob (bank-b): expect COMMITTED"
set +e
"$BIN/treaty" --coordinator "$COORD" submit 2pc -f "$WORK/transfer.json" --xid demo-transfer-1 --wait
rc=$?
echo "   exit code $rc"
echo "== transfer 500 from alice: expect ABORTED (insufficient funds)"
"$BIN/treaty" --coordinator "$COORD" submit 2pc -f "$WORK/too-much.json" --xid demo-transfer-2 --wait
rc2=$?
set -e
echo "   exit code $rc2"
echo "== treaty tx get demo-transfer-1"
sleep 0.3
"$BIN/treaty" --coordinator "$COORD" tx get demo-transfer-1
echo "== balances after"
show_balances
if [ "$rc" -ne 0 ] || [ "$rc2" -ne 3 ]; then
  echo "demo: unexpected exit codes ($rc, $rc2)" >&2
  exit 1
fi
echo "== demo finished; stopping everything"
