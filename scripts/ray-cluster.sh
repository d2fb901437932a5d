#!/usr/bin/env bash
# A Ray cluster on this machine's loopback, for trying `--backend ray` and `ray job submit`.
#
#   scripts/ray-cluster.sh start     start a head node on 127.0.0.1 (returns once jobs are accepted)
#   scripts/ray-cluster.sh status    is it up? where is it?
#   scripts/ray-cluster.sh stop      stop this cluster only (its process group; other Ray clusters stay)
#
# Settings (environment): RAY_TEMP_DIR (default /tmp/autoprune-ray: logs, sockets, the PID file),
# RAY_PORT (6380), RAY_DASHBOARD_PORT (8265, also the Jobs API), RAY_NUM_CPUS (all cores), VENV (.venv).
# Jobs run with this project's environment: the venv's bin comes first on PATH when the head starts.
# Loopback only, so token authentication is off (RAY_AUTH_MODE=disabled) and usage stats are never sent.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMP_DIR=${RAY_TEMP_DIR:-/tmp/autoprune-ray}
PORT=${RAY_PORT:-6380}
DASHBOARD_PORT=${RAY_DASHBOARD_PORT:-8265}
VENV=${VENV:-.venv}
PID_FILE="$TEMP_DIR/head.pid"
ADDRESS="http://127.0.0.1:$DASHBOARD_PORT"

# live (non-zombie) processes of a process group
group_alive() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {found = 1} END {exit !found}'; }

running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

start() {
    if running; then echo "already running: $ADDRESS (pid $(cat "$PID_FILE"))"; return 0; fi
    [ -x "$VENV/bin/ray" ] || { echo "no $VENV/bin/ray: run 'make setup' first" >&2; exit 2; }
    mkdir -p "$TEMP_DIR"
    export PATH="$(cd "$VENV/bin" && pwd):$PATH" RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
    # --block keeps `ray start` as the parent of the head's processes; setsid gives them one process
    # group, so `stop` ends exactly this cluster
    setsid ray start --head --block --node-ip-address 127.0.0.1 --port "$PORT" \
        --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" --include-dashboard true \
        --temp-dir "$TEMP_DIR" --disable-usage-stats ${RAY_NUM_CPUS:+--num-cpus "$RAY_NUM_CPUS"} \
        >"$TEMP_DIR/head.log" 2>&1 < /dev/null &
    echo $! > "$PID_FILE"
    for _ in $(seq 120); do
        if ! running; then echo "the head did not start; see $TEMP_DIR/head.log" >&2; tail -n 20 "$TEMP_DIR/head.log" >&2; exit 1; fi
        if ray job list --address "$ADDRESS" >/dev/null 2>&1; then
            echo "Ray head on 127.0.0.1:$PORT; jobs: $ADDRESS (pid $(cat "$PID_FILE"), logs in $TEMP_DIR)"
            echo "submit (absolute paths: a job runs in Ray's working directory): RAY_ADDRESS=$ADDRESS ray job submit --" \
                "autoprune run \"$PWD/pipelines/quickstart_digits.yaml\" --backend ray --set tracking.uri=\"sqlite:///$PWD/mlflow/mlflow.db\""
            return 0
        fi
        sleep 1
    done
    echo "the head did not answer on $ADDRESS within 120 s; see $TEMP_DIR/head.log" >&2
    stop; exit 1
}

stop() {
    if ! [ -f "$PID_FILE" ]; then echo "not running (no $PID_FILE)"; return 0; fi
    pid=$(cat "$PID_FILE")
    # TERM lets the head's processes shut down; the raylet may ignore it, so KILL what is left after 10 s
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 10); do group_alive "$pid" || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    for _ in $(seq 10); do group_alive "$pid" || break; sleep 1; done
    rm -f "$PID_FILE"
    echo "stopped the Ray head (process group $pid)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if running; then echo "running: $ADDRESS (pid $(cat "$PID_FILE"))"; else echo "not running"; exit 1; fi ;;
    *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
