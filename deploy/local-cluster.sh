#!/usr/bin/env bash
# Starts or stops a zmr coordinator and N workers on this machine. Logs, pid files and worker work
# dirs live in one directory.
#
#   deploy/local-cluster.sh start [--dir DIR] [--workers N] [--slots S] [--bin DIR]
#                                 [--port-base P] [--heartbeat-ms MS]
#   deploy/local-cluster.sh stop   [--dir DIR]
#   deploy/local-cluster.sh status [--dir DIR]
#
# Defaults: --dir .zmr-cluster, --workers 2, --slots 1, --bin build (the directory holding
# coordinator/zmr-coordinator and worker/zmr-worker, or the binaries themselves), --port-base 5555
# (workers P, clients P+1, events P+2, all on 127.0.0.1).
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
dir=.zmr-cluster workers=2 slots=1 bin=build port_base=5555 heartbeat_ms=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --slots) slots=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --port-base) port_base=$2; shift 2 ;;
    --heartbeat-ms) heartbeat_ms=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "local-cluster.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

find_bin() {
  local name=$1 sub=$2
  for candidate in "$bin/$sub/$name" "$bin/$name"; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  command -v "$name" || { echo "local-cluster.sh: cannot find $name under $bin" >&2; exit 1; }
}

stop() {
  [ -d "$dir" ] || return 0
  local pids=()
  for f in "$dir"/*.pid; do
    [ -e "$f" ] || continue
    pids+=("$(cat "$f")")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  rm -f "$dir"/*.pid
  echo "cluster in $dir stopped" >&2
}

case "$cmd" in
  start)
    coordinator=$(find_bin zmr-coordinator coordinator)
    worker=$(find_bin zmr-worker worker)
    mkdir -p "$dir"
    stop
    rm -f "$dir/ready"
    w="tcp://127.0.0.1:$port_base"
    c="tcp://127.0.0.1:$((port_base + 1))"
    e="tcp://127.0.0.1:$((port_base + 2))"
    "$coordinator" --workers "$w" --clients "$c" --events "$e" --heartbeat-ms "$heartbeat_ms" \
      --ready-file "$dir/ready" >"$dir/coordinator.log" 2>&1 &
    echo $! >"$dir/coordinator.pid"
    for _ in $(seq 100); do
      [ -s "$dir/ready" ] && break
      kill -0 "$(cat "$dir/coordinator.pid")" 2>/dev/null || {
        echo "local-cluster.sh: coordinator failed to start:" >&2; tail -5 "$dir/coordinator.log" >&2
        rm -f "$dir/coordinator.pid"; exit 1; }
      sleep 0.1
    done
    [ -s "$dir/ready" ] || { echo "local-cluster.sh: coordinator did not come up" >&2; stop; exit 1; }
    for i in $(seq "$workers"); do
      "$worker" --coordinator "$w" --slots "$slots" --name "worker-$i" \
        --work-dir "$dir/work-$i" --heartbeat-ms "$heartbeat_ms" >"$dir/worker-$i.log" 2>&1 &
      echo $! >"$dir/worker-$i.pid"
    done
    echo "cluster up: coordinator $c ($workers workers x $slots slots), logs in $dir" >&2
    echo "export ZMR_COORDINATOR=$c"
    ;;
  stop) stop ;;
  status)
    for f in "$dir"/*.pid; do
      [ -e "$f" ] || { echo "no cluster in $dir"; exit 1; }
      p=$(cat "$f")
      if kill -0 "$p" 2>/dev/null; then s=running; else s=dead; fi
      echo "$(basename "$f" .pid) pid $p $s"
    done
    ;;
  *) usage ;;
esac
