#!/usr/bin/env bash
# The container check (`make docker-check`; .ci/run runs it after the test suite), as root:
#   1. a Docker engine: started if none answers (Debian's docker.io installed if absent), stopped at the end;
#   2. base images: the real python:3.11-slim and postgres:15 when the registry answers, otherwise local
#      stand-ins made by ../shared/docker/make-base-images.sh (which also provides Compose v2);
#   3. builds the full image (CPU torch; the build fails on a torch that is not the CPU build) and the
#      slim API image (no torch);
#   4. `docker compose up` (PostgreSQL, the API, a CPU worker), waits for /readyz, submits the README's
#      run through the API, waits for it to succeed on the worker, fetches its molecules and an SDF export;
#   5. takes the stack down and up again and checks the run and its molecules survived (named volumes),
#      and that the API and worker healthchecks report healthy;
#   6. tears everything down (volumes too). Prints the image size and the wall time of each stage.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=synflow-check
PORT="${SYNFLOW_CHECK_PORT:-18080}"
URL="http://127.0.0.1:${PORT}"
SHARED_SCRIPT=../shared/docker/make-base-images.sh
started_engine=""
t0=$(date +%s)

say() { echo "docker-check [$(( $(date +%s) - t0 )) s]: $*"; }
fail() { echo "docker-check: FAILED: $*" >&2; exit 1; }
compose() { SYNFLOW_PORT="$PORT" docker compose -p "$PROJECT" "$@"; }
json() { python3 -c "import json, sys; data = json.load(sys.stdin); print($1)"; }

cleanup() {
  status=$?
  if [ "$status" -ne 0 ] && docker info >/dev/null 2>&1; then
    compose logs --no-color --tail 80 2>/dev/null || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  if [ -n "$started_engine" ]; then
    kill "$started_engine" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$started_engine" 2>/dev/null || break; sleep 1; done
    say "stopped the Docker engine this check started"
  fi
  exit "$status"
}
trap cleanup EXIT

# 1. engine ----------------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing Debian's docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
  fi
  dockerd --storage-driver=overlay2 >/tmp/synflow-check-dockerd.log 2>&1 &
  started_engine=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || fail "dockerd did not start: $(tail -5 /tmp/synflow-check-dockerd.log)"
  say "started a Docker engine (pid $started_engine)"
fi

# 2. base images and Compose v2 -------------------------------------------------------------------
build_args=()
if timeout 60 docker pull -q python:3.11-slim >/dev/null 2>&1 && timeout 60 docker pull -q postgres:15 >/dev/null 2>&1; then
  say "base images pulled from the registry"
else
  [ -f "$SHARED_SCRIPT" ] || fail "the registry is unreachable and there is no $SHARED_SCRIPT to make local base images"
  say "registry unreachable: making local stand-in base images with $SHARED_SCRIPT"
  bash "$SHARED_SCRIPT" --compose >/dev/null
  # the stand-in python image carries this machine's CPU torch wheel for pip (find-links);
  # PyTorch's own index does not resolve here
  build_args+=(--build-arg TORCH_INDEX_URL=https://pypi.org/simple)
fi
if ! docker compose version >/dev/null 2>&1; then
  [ -f "$SHARED_SCRIPT" ] || fail "Compose v2 (docker compose) is missing"
  bash "$SHARED_SCRIPT" --compose >/dev/null
fi
docker compose version >/dev/null 2>&1 || fail "Compose v2 (docker compose) is missing"

# 3. build -----------------------------------------------------------------------------------------
b0=$(date +%s)
DOCKER_BUILDKIT=0 docker build "${build_args[@]}" -t synflow:latest . >/tmp/synflow-check-build.log 2>&1 \
  || { tail -40 /tmp/synflow-check-build.log >&2; fail "docker build"; }
size=$(docker image inspect synflow:latest --format '{{.Size}}')
say "built synflow:latest in $(( $(date +%s) - b0 )) s, $(( size / 1000000 )) MB"
b1=$(date +%s)
DOCKER_BUILDKIT=0 docker build "${build_args[@]}" --target api -t synflow-api:latest . >>/tmp/synflow-check-build.log 2>&1 \
  || { tail -40 /tmp/synflow-check-build.log >&2; fail "docker build --target api"; }
api_size=$(docker image inspect synflow-api:latest --format '{{.Size}}')
base_size=$(docker image inspect python:3.11-slim --format '{{.Size}}')
say "built synflow-api:latest in $(( $(date +%s) - b1 )) s, $(( api_size / 1000000 )) MB (the python base image: $(( base_size / 1000000 )) MB)"
grep -E "^torch .* matches TORCH_VARIANT" /tmp/synflow-check-build.log | tail -1 || true  # absent when the layer is cached
docker run --rm --entrypoint python synflow:latest -c "import torch; assert torch.version.cuda is None; print('full image: torch', torch.__version__)"
docker run --rm --entrypoint python synflow-api:latest -c "import importlib.util as u; assert u.find_spec('torch') is None; print('api image: no torch')"

# 4. up, a run through the API ---------------------------------------------------------------------
wait_ready() {
  for _ in $(seq 1 120); do
    curl -fsS "$URL/readyz" >/dev/null 2>&1 && return 0
    sleep 2
  done
  fail "the API did not become ready at $URL/readyz"
}
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d --no-build postgres api worker
wait_ready
say "API ready at $URL"
body=$(python3 - <<'PY'
import json, shlex
lines = open("README.md").read().splitlines()
for i, line in enumerate(lines):
    if line.startswith("curl") and "-X POST" in line and line.rstrip().endswith("\\"):
        args = shlex.split(line.rstrip("\\") + " " + lines[i + 1])
        # the run example: a RunConfig posted to /api/v1/runs itself (other examples post elsewhere)
        if any(a.endswith("/api/v1/runs") for a in args) and "-d" in args:
            print(json.dumps(json.loads(args[args.index("-d") + 1])))
            break
else:
    raise SystemExit("no curl -X POST /api/v1/runs example in the README")
PY
)
run_id=$(curl -fsS -X POST "$URL/api/v1/runs" -H 'content-type: application/json' -d "$body" | json 'data["id"]')
say "submitted the README's run $run_id: $body"
status=queued
for _ in $(seq 1 300); do
  status=$(curl -fsS "$URL/api/v1/runs/$run_id" | json 'data["status"]')
  case "$status" in succeeded) break ;; failed|cancelled)
    curl -fsS "$URL/api/v1/runs/$run_id" >&2; fail "the run ended $status" ;; esac
  sleep 2
done
[ "$status" = succeeded ] || fail "the run did not finish in 10 minutes (status $status)"
molecules=$(curl -fsS "$URL/api/v1/runs/$run_id/molecules?sort=-reward&limit=1000" | json 'len(data["items"])')
records=$(curl -fsS "$URL/api/v1/runs/$run_id/export?format=sdf" | grep -c '^\$\$\$\$' || true)
[ "$molecules" -gt 0 ] && [ "$records" -eq "$molecules" ] \
  || fail "molecules: $molecules listed, $records SDF records"
say "run succeeded on the CPU worker: $molecules molecules, an SDF export of $records records"

# 5. restart: the data survives; healthchecks ------------------------------------------------------
compose down
compose up -d --no-build postgres api worker
wait_ready
after=$(curl -fsS "$URL/api/v1/runs/$run_id/molecules?sort=-reward&limit=1000" | json 'len(data["items"])')
again=$(curl -fsS "$URL/api/v1/runs/$run_id" | json 'data["status"]')
[ "$again" = succeeded ] && [ "$after" -eq "$molecules" ] \
  || fail "after a restart: status $again, $after molecules (before: $molecules)"
say "after down/up the run and its $after molecules are still there"
for service in api worker; do
  health=starting
  for _ in $(seq 1 60); do
    health=$(docker inspect --format '{{.State.Health.Status}}' "$(compose ps -q "$service")")
    [ "$health" = healthy ] && break
    sleep 2
  done
  [ "$health" = healthy ] || fail "$service healthcheck: $health"
done
say "api and worker healthchecks: healthy"

# 6. teardown (the trap) -----------------------------------------------------------------------------
say "passed: images $(( size / 1000000 )) MB (full) and $(( api_size / 1000000 )) MB (api), $(( $(date +%s) - t0 )) s in all"
