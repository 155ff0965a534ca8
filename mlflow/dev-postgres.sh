#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for MLflow's backend store: tests, benchmarks and trying the server locally.
# A team deployment uses a managed PostgreSQL instead and only needs start-server.sh.
#
#   mlflow/dev-postgres.sh start DIR PORT   # initdb DIR (once), listen on 127.0.0.1:PORT, socket in DIR;
#                                           # prints the backend store URI (database "mlflow", user "mlflow")
#   mlflow/dev-postgres.sh stop DIR
#
# initdb and postgres refuse to run as root: as root the cluster runs as the `postgres` system user (Debian's
# postgresql package creates it), so DIR must be a folder that user may enter (e.g. from mktemp -d, which this
# script hands to it; not a path under a 0700 folder like pytest's tmp_path). As any other user it runs as you.
# PG_BIN (default: the newest /usr/lib/postgresql/*/bin, else PATH) names the server binaries.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
action=$1
dir=$(realpath -m "$2")

if [[ -z "${PG_BIN:-}" ]]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [[ -n "$PG_BIN" ]] || PG_BIN=$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)")
fi
[[ -x "$PG_BIN/pg_ctl" ]] || { echo "$0: no pg_ctl in $PG_BIN; install postgresql or set PG_BIN" >&2; exit 1; }

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || { echo "$0: running as root needs a 'postgres' user" >&2; exit 1; }
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$action" in
  start)
    [[ $# -eq 3 ]] || usage
    port=$3
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      mkdir -p "$dir/data"
      if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres: "$dir"
        runuser -u postgres -- test -x "$dir" ||
          { echo "$0: user postgres cannot enter $dir: make its parent folders searchable (chmod o+x)" >&2; exit 1; }
      fi
      as_owner "$PG_BIN/initdb" -D "$dir/data" -U mlflow -A trust -E UTF8 --no-instructions >"$dir/initdb.log"
    fi
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off" start >/dev/null
    # createdb is idempotent here: an existing database is fine.
    as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U mlflow -d postgres -qAt \
      -c "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1 ||
      as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U mlflow mlflow
    echo "postgresql://mlflow@127.0.0.1:$port/mlflow"
    ;;
  stop)
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *) usage ;;
esac
