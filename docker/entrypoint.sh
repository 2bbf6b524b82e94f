#!/bin/sh
# Container entrypoint: wait for the database, apply migrations, then run `synflow "$@"`.
# Works outside a container too (tests run it against a throwaway database):
#   SYNFLOW_DATABASE_URL=sqlite:////tmp/x.db docker/entrypoint.sh db upgrade
set -eu

SYNFLOW="${SYNFLOW_BIN:-synflow}"
WAIT_SECONDS="${SYNFLOW_DB_WAIT_SECONDS:-60}"

if [ "${SYNFLOW_SKIP_MIGRATIONS:-0}" != "1" ]; then
  elapsed=0
  until $SYNFLOW db upgrade >/tmp/synflow-migrate.log 2>&1; do
    elapsed=$((elapsed + 2))
    if [ "$elapsed" -ge "$WAIT_SECONDS" ]; then
      echo "synflow-entrypoint: database not reachable or migration failed after ${WAIT_SECONDS}s:" >&2
      cat /tmp/synflow-migrate.log >&2
      exit 1
    fi
    sleep 2
  done
  echo "synflow-entrypoint: database schema up to date"
fi

if [ "$#" -eq 0 ]; then
  set -- serve --host 0.0.0.0 --port 8000
fi
exec $SYNFLOW "$@"
