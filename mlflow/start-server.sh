#!/usr/bin/env bash
# Start the team's MLflow tracking server: runs and the model registry in PostgreSQL, artifacts in S3.
#
#   set -a; source mlflow/server.env; set +a    # a copy of server.env.example with your values
#   mlflow/start-server.sh [extra `mlflow server` options...]
#
# The server proxies artifacts (--artifacts-destination): clients log to mlflow-artifacts:/ over HTTP and
# need no S3 credentials; only this process holds them (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or an
# instance role). Secrets come from the environment only: nothing here or in server.env.example holds one.
set -euo pipefail

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI, e.g. postgresql://mlflow@db:5432/mlflow (see mlflow/server.env.example)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION, e.g. s3://lamops-mlflow/artifacts (see mlflow/server.env.example)}"
host=${MLFLOW_HOST:-127.0.0.1}
port=${MLFLOW_PORT:-5000}
workers=${MLFLOW_WORKERS:-2}
mlflow_bin=${MLFLOW_BIN:-mlflow}

# The PostgreSQL password, when there is one, comes from PGPASSWORD (libpq reads it) rather than the URI,
# so it never shows in `ps` or in this script's output.
exec "$mlflow_bin" server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --registry-store-uri "${MLFLOW_REGISTRY_STORE_URI:-$MLFLOW_BACKEND_STORE_URI}" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --host "$host" \
  --port "$port" \
  --workers "$workers" \
  "$@"
