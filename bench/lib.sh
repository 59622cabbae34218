# Helpers shared by bench/run.sh and bench/cluster.sh (sourced, not run).

# A loopback port nobody listens on, below the ephemeral range, not handed out before.
used_ports=" "
free_port() {
  local p
  while true; do
    p=$((20000 + RANDOM % 12000))
    [[ "$used_ports" == *" $p "* ]] && continue
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . && continue
    used_ports+="$p "
    echo "$p"
    return
  done
}

# wait_port PORT PID NAME: until PORT accepts connections; fails (with NAME's log from $WORK) if
# the process PID exits first or the port stays closed for 15 s.
wait_port() {
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "error: $3 exited; see $WORK/$3.log" >&2; tail -20 "$WORK/$3.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "error: $3 did not open port $1" >&2
  exit 1
}
