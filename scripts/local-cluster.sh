#!/usr/bin/env bash
# A local Treaty cluster on one machine: three treatyd nodes (Raft), two bank participants
# (bank-a, bank-b) and the order saga's three services (inventory, payment, shipping).
#
#   scripts/local-cluster.sh start   [--dir DIR] [--base-port N]   start everything (background)
#   scripts/local-cluster.sh status  [--dir DIR]                   `treaty cluster status`
#   scripts/local-cluster.sh kill-leader [--dir DIR]               kill -9 the serving leader
#   scripts/local-cluster.sh restart NODE [--dir DIR]              start node NODE (1..9) again
#   scripts/local-cluster.sh add-node NODE [--dir DIR]             start node NODE (4..9) with
#                                                                  --join, then cluster add-node it
#   scripts/local-cluster.sh remove-node NODE [--dir DIR]          cluster remove-node, stop it
#   scripts/local-cluster.sh stop    [--dir DIR]                   stop everything, keep the data
#
# Ports (base N, default 7700): clients N+1..N+3, Raft N+11..N+13, admin HTTP N+21..N+23 (/healthz,
# /readyz, /metrics; added nodes 4..9 likewise), bank-a N+31, bank-b N+32,
# inventory/payment/shipping N+41..N+43.
# DIR (default /tmp/treaty-local-cluster) holds each process's data directory and log, and
# cluster.env (COORDINATORS=... for `treaty --coordinator "$COORDINATORS"`).
# Binaries come from ${BUILD_DIR:-build}/bin (relative to the repository, or absolute): run
# scripts/build.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
case ${BUILD_DIR:-build} in
  /*) BIN=$BUILD_DIR/bin ;;
  *) BIN=$PWD/${BUILD_DIR:-build}/bin ;;
esac

cmd=${1:-}
[ -n "$cmd" ] && shift
DIR=/tmp/treaty-local-cluster
BASE=7700
NODE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --base-port) BASE=$2; shift 2 ;;
    [1-9]) NODE=$1; shift ;;
    *) echo "local-cluster.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

client() { echo "127.0.0.1:$((BASE + $1))"; }
raft() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
admin() { echo "127.0.0.1:$((BASE + 20 + $1))"; }
COORDINATORS="$(client 1),$(client 2),$(client 3)"
PEERS="1=$(raft 1),2=$(raft 2),3=$(raft 3)"

load_env() {
  if [ -f "$DIR/cluster.env" ]; then
    # shellcheck disable=SC1091
    . "$DIR/cluster.env"
  fi
}

start_node() {
  local i=$1 peers=$PEERS join=()
  # Nodes beyond the first three were added at run time: they never bootstrap.
  if [ "$i" -gt 3 ]; then peers="$i=$(raft "$i")"; join=(--join); fi
  mkdir -p "$DIR/treatyd-$i"
  "$BIN/treatyd" --node-id "$i" --raft "$(raft "$i")" --peers "$peers" "${join[@]}" \
    --listen "$(client "$i")" --admin "$(admin "$i")" --data-dir "$DIR/treatyd-$i/data" \
    --log-level "${TREATY_LOG_LEVEL:-info}" >>"$DIR/treatyd-$i/treatyd.log" 2>&1 &
  echo $! >"$DIR/treatyd-$i/pid"
}

start_participant() {
  local name=$1 bin=$2 port=$3
  shift 3
  mkdir -p "$DIR/$name"
  "$BIN/$bin" --service "$name" --listen "127.0.0.1:$port" --coordinator "$COORDINATORS" \
    --data-dir "$DIR/$name/data" --log-level "${TREATY_LOG_LEVEL:-info}" "$@" \
    >>"$DIR/$name/$name.log" 2>&1 &
  echo $! >"$DIR/$name/pid"
}

running() { [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

# The node whose /readyz answers 200: the serving leader.
leader() {
  for i in 1 2 3 4 5 6 7 8 9; do
    [ "$i" -le 3 ] || [ -d "$DIR/treatyd-$i" ] || continue
    if curl -fs -m 1 "http://$(admin "$i")/readyz" >/dev/null 2>&1; then
      echo "$i"
      return 0
    fi
  done
  return 1
}

wait_leader() {
  for _ in $(seq 150); do
    if leader >/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "local-cluster.sh: no serving leader after 15 s; see $DIR/treatyd-*/treatyd.log" >&2
  return 1
}

case "$cmd" in
  start)
    for b in treatyd treaty bank-participant order-participant; do
      [ -x "$BIN/$b" ] || { echo "local-cluster.sh: $BIN/$b is missing: run scripts/build.sh" >&2; exit 1; }
    done
    mkdir -p "$DIR"
    load_env
    if [ "${BASE_PORT:-$BASE}" != "$BASE" ] && running "$DIR/treatyd-1"; then
      echo "local-cluster.sh: a cluster with base port $BASE_PORT runs in $DIR" >&2; exit 1
    fi
    printf 'COORDINATORS=%s\nBASE_PORT=%s\n' "$COORDINATORS" "$BASE" >"$DIR/cluster.env"
    for i in 1 2 3; do running "$DIR/treatyd-$i" || start_node "$i"; done
    wait_leader
    running "$DIR/bank-a" || start_participant bank-a bank-participant $((BASE + 31)) --accounts alice=100
    running "$DIR/bank-b" || start_participant bank-b bank-participant $((BASE + 32)) --accounts bob=50
    running "$DIR/inventory" || start_participant inventory order-participant $((BASE + 41)) --stock widget=10
    running "$DIR/payment" || start_participant payment order-participant $((BASE + 42))
    running "$DIR/shipping" || start_participant shipping order-participant $((BASE + 43))
    echo "cluster up in $DIR: leader is node $(leader)"
    echo "  export COORDINATORS=$COORDINATORS"
    echo "  $BIN/treaty --coordinator \$COORDINATORS cluster status"
    ;;
  status)
    load_env
    BASE=${BASE_PORT:-$BASE}
    exec "$BIN/treaty" --coordinator "${COORDINATORS}" cluster status
    ;;
  kill-leader)
    load_env
    BASE=${BASE_PORT:-$BASE}
    n=$(leader) || { echo "local-cluster.sh: no serving leader" >&2; exit 1; }
    kill -9 "$(cat "$DIR/treatyd-$n/pid")"
    echo "killed node $n (kill -9)"
    ;;
  restart)
    load_env
    BASE=${BASE_PORT:-$BASE}
    COORDINATORS="$(client 1),$(client 2),$(client 3)"
    PEERS="1=$(raft 1),2=$(raft 2),3=$(raft 3)"
    [ -n "$NODE" ] || { echo "local-cluster.sh restart: name the node, 1..9" >&2; exit 2; }
    running "$DIR/treatyd-$NODE" && { echo "node $NODE is running"; exit 0; }
    start_node "$NODE"
    echo "started node $NODE"
    ;;
  add-node)
    load_env
    BASE=${BASE_PORT:-$BASE}
    if [ -z "$NODE" ] || [ "$NODE" -le 3 ]; then
      echo "local-cluster.sh add-node: name the node, 4..9" >&2; exit 2
    fi
    running "$DIR/treatyd-$NODE" || start_node "$NODE"
    "$BIN/treaty" --coordinator "$COORDINATORS" cluster add-node "$NODE" "$(raft "$NODE")" \
      --client-address "$(client "$NODE")"
    case ",$COORDINATORS," in
      *",$(client "$NODE"),"*) ;;
      *) COORDINATORS="$COORDINATORS,$(client "$NODE")" ;;
    esac
    printf 'COORDINATORS=%s\nBASE_PORT=%s\n' "$COORDINATORS" "$BASE" >"$DIR/cluster.env"
    ;;
  remove-node)
    load_env
    BASE=${BASE_PORT:-$BASE}
    [ -n "$NODE" ] || { echo "local-cluster.sh remove-node: name the node" >&2; exit 2; }
    "$BIN/treaty" --coordinator "$COORDINATORS" cluster remove-node "$NODE"
    # A removed node keeps campaigning: stop it now.
    if running "$DIR/treatyd-$NODE"; then kill "$(cat "$DIR/treatyd-$NODE/pid")"; fi
    COORDINATORS=$(echo ",$COORDINATORS," | sed "s|,$(client "$NODE"),|,|; s|^,||; s|,$||")
    printf 'COORDINATORS=%s\nBASE_PORT=%s\n' "$COORDINATORS" "$BASE" >"$DIR/cluster.env"
    echo "stopped node $NODE"
    ;;
  stop)
    for d in "$DIR"/*/; do
      if running "$d"; then kill "$(cat "$d/pid")" 2>/dev/null || true; fi
    done
    sleep 0.5
    for d in "$DIR"/*/; do
      if running "$d"; then kill -9 "$(cat "$d/pid")" 2>/dev/null || true; fi
      rm -f "$d/pid"
    done
    echo "stopped (data kept in $DIR)"
    ;;
  *)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    [ -z "$cmd" ] && exit 2
    echo "local-cluster.sh: unknown command '$cmd'" >&2
    exit 2
    ;;
esac
