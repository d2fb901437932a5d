#!/usr/bin/env bash
# Start the MLflow UI over this folder's store: 127.0.0.1, one worker, job execution off.
# Usage: mlflow/server.sh [PORT]    (runs in the foreground: Ctrl-C reaches the server and its worker)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-5000}"
mlflow_bin="${MLFLOW:-$(dirname "$here")/.venv/bin/mlflow}"
[ -x "$mlflow_bin" ] || mlflow_bin=mlflow
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true
exec "$mlflow_bin" server \
    --backend-store-uri "sqlite:///$here/mlflow.db" \
    --default-artifact-root "file://$here/artifacts" \
    --host 127.0.0.1 --port "$port" --workers 1
