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
#   6. tears everything down (volumes too) and removes the images it built and their intermediate stages
#      (each run would otherwise leave 2.4 GB behind; SYNFLOW_CHECK_KEEP_IMAGES=1 keeps them for a faster rerun).
#      Prints the image sizes, the disk left for Docker and the wall time of each stage.
# It needs about 4 GB free where Docker keeps its images (3.1 GB at the peak, measured: BENCHMARKS.md); it says so
# before building rather than failing half-way with "no space left on device".
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=synflow-check
PORT="${SYNFLOW_CHECK_PORT:-18080}"
URL="http://127.0.0.1:${PORT}"
SHARED_SCRIPT=../shared/docker/make-base-images.sh
started_engine=""
dangling_before=""
built=""
MIN_FREE_MB="${SYNFLOW_CHECK_MIN_FREE_MB:-4000}"
t0=$(date +%s)

say() { echo "docker-check [$(( $(date +%s) - t0 )) s]: $*"; }
fail() { echo "docker-check: FAILED: $*" >&2; exit 1; }
compose() { SYNFLOW_PORT="$PORT" docker compose -p "$PROJECT" "$@"; }
json() { python3 -c "import json, sys; data = json.load(sys.stdin); print($1)"; }
docker_root() { docker info --format '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker; }
free_mb() { df -Pm "$(docker_root)" | awk 'NR == 2 { print $4 }'; }

# the images this check built, and the intermediate stage images its builds left dangling
remove_built_images() {
  [ -n "$built" ] || return 0
  if [ "${SYNFLOW_CHECK_KEEP_IMAGES:-0}" = "1" ]; then
    say "kept the images (SYNFLOW_CHECK_KEEP_IMAGES=1)"
    return 0
  fi
  docker image rm synflow:latest synflow-api:latest >/dev/null 2>&1 || true
  new=$(comm -13 <(echo "$dangling_before") <(docker images -q --filter dangling=true | sort -u))
  [ -z "$new" ] || docker image rm $new >/dev/null 2>&1 || true
  say "removed the images it built; $(free_mb) MB free for Docker"
}

cleanup() {
  status=$?
  if [ "$status" -ne 0 ] && docker info >/dev/null 2>&1; then
    compose logs --no-color --tail 80 2>/dev/null || true
  fi
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  docker info >/dev/null 2>&1 && remove_built_images
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
free=$(free_mb)
[ "$free" -ge "$MIN_FREE_MB" ] || fail "$free MB free in $(docker_root); the build needs about $MIN_FREE_MB MB \
(free some: docker system prune; set SYNFLOW_CHECK_MIN_FREE_MB to override)"
say "$free MB free for Docker in $(docker_root)"
dangling_before=$(docker images -q --filter dangling=true | sort -u)
built=yes
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
say "the builds used $(( free - $(free_mb) )) MB of disk; $(free_mb) MB left"
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
