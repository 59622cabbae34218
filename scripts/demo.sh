#!/usr/bin/env bash
# The demo on a fresh Debian 12 machine: installs dependencies, builds, starts a local 3-node
# coordinator cluster with the example participants (scripts/local-cluster.sh), then through the
# CLI: a transfer that commits, one that aborts for insufficient funds, kill -9 of the leader, a
# transfer committed by the new leader, and the order saga. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh treatyd treaty bank-participant order-participant
BIN=$PWD/${BUILD_DIR:-build}/bin

WORK=$(mktemp -d /tmp/treaty-demo.XXXXXX)
# A base port whose 50 neighbours are free (local-cluster.sh uses base+1 .. base+43).
BASE=$(python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000, 100)
    try:
        socks = []
        for p in range(base, base + 50):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        for s in socks: s.close()
        print(base); break
    except OSError:
        for s in socks: s.close()
PY
)
cluster() { bash scripts/local-cluster.sh "$@" --dir "$WORK"; }
cleanup() {
  cluster stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export TREATY_LOG_LEVEL=warn

echo "== starting a 3-node cluster and the example participants (base port $BASE)"
cluster start --base-port "$BASE"
. "$WORK/cluster.env"
treaty() { "$BIN/treaty" --coordinator "$COORDINATORS" "$@"; }

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
BANK_A=127.0.0.1:$((BASE + 31))
BANK_B=127.0.0.1:$((BASE + 32))
# The participants register with the leader as soon as they listen.
for _ in $(seq 150); do
  if "$BIN/bank-participant" balances --listen "$BANK_A" >/dev/null 2>&1 &&
     "$BIN/bank-participant" balances --listen "$BANK_B" >/dev/null 2>&1 &&
     treaty services 2>/dev/null | grep -q shipping; then
    break
  fi
  sleep 0.1
done
sleep 0.5
show_balances() {
  echo "   bank-a: $("$BIN/bank-participant" balances --listen "$BANK_A" --output json)"
  echo "   bank-b: $("$BIN/bank-participant" balances --listen "$BANK_B" --output json)"
}

echo "== treaty cluster status"
treaty cluster status
echo "== balances before"
show_balances

set +e
echo "== transfer 30 from alice (bank-a) to bob (bank-b): expect COMMITTED"
treaty submit 2pc -f "$WORK/transfer.json" --xid demo-transfer-1 --wait
rc1=$?
echo "== transfer 500 from alice: expect ABORTED (insufficient funds)"
treaty submit 2pc -f "$WORK/too-much.json" --xid demo-transfer-2 --wait
rc2=$?
echo "== kill -9 the leader; the other two elect a new one"
cluster kill-leader
echo "== transfer 30 again, through whichever node leads now: expect COMMITTED"
treaty submit 2pc -f "$WORK/transfer.json" --xid demo-transfer-3 --wait
rc3=$?
echo "== treaty cluster status (one node unreachable)"
treaty cluster status
echo "== the order saga (examples/order/order.json): expect COMPLETED"
treaty submit saga -f examples/order/order.json --xid demo-order-1 --wait
rc4=$?
set -e
sleep 0.3
echo "== treaty tx get demo-transfer-3"
treaty tx get demo-transfer-3
echo "== balances after (alice paid 60, bob received 60)"
show_balances
echo "   exit codes: $rc1 $rc2 $rc3 $rc4"
if [ "$rc1" -ne 0 ] || [ "$rc2" -ne 3 ] || [ "$rc3" -ne 0 ] || [ "$rc4" -ne 0 ]; then
  echo "demo: unexpected exit codes (expected 0 3 0 0)" >&2
  exit 1
fi
echo "== demo finished; stopping everything"
