#!/usr/bin/env bash
# The GPU check: CUDA tests, the learner benchmark and the sampler throughput on a lent GPU machine,
# in about 8 minutes, each part under its own timeout, figures written to $OUT as they come (a run
# cut short still returns what it measured).
#
# Files written to $OUT (8 at most come back):
#   env.txt             GPU, driver, Python, torch, packages, CPUs, load
#   gpu_check.log       everything printed (the learner's cProfile of a cold step too)
#   pytest-cuda.txt     tests/synflow/test_cuda.py, verbose (the CUDA tests run there, skip here)
#   pytest-models.txt   model / objective / trainer tests, on CUDA (tiny_config's device is "auto")
#   learner-cuda.json   benchmarks/learner.py on CUDA: trained trajectories/s at batch 64, 256, 1024
#                       (graphs cached; graphs cold; inputs prefetched in a thread; graphs packed in
#                       another process), the split, GPU utilisation, peak memory
#   samplers.json       benchmarks/synflownet.py with 1, 2, 4 samplers (once that option exists), one
#                       JSON a line, each with the GPU utilisation nvidia-smi saw during it
#   learner-cpu.json    benchmarks/learner.py on the same machine's CPU, batch 64, for comparison
#
# The machine (nvidia-h200) has python3 = /opt/torch/.venv/bin/python3 (3.12) with torch 2.11+cu130,
# torch-geometric 2.8, numpy, scipy, pyyaml, rich, pytest, pytest-xdist, pytest-timeout, nvidia-ml-py,
# but no RDKit and no pydantic. They travel as wheels in .whl (34 MB; the tree with them ~39 MB of the
# 64 MiB limit). Made once, on the development machine, from the repository root:
#
#   echo /.whl/ >> .git/info/exclude; echo /.gpudata/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#     rdkit==2026.9.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
#     typing-inspection==0.4.5 typing-extensions==4.16.0
#   # -> rdkit-2026.9.1-cp312-cp312-manylinux_2_28_x86_64.whl                          31.8 MB
#   #    pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 2.3 MB
#   #    pydantic-2.14.4-py3-none-any.whl 0.5 MB, typing_extensions-4.16.0 (pydantic needs >= 4.16),
#   #    typing_inspection-0.4.5, annotated_types-0.8.0 (tens of kB each)
#   # optional, 172 kB: the reference data the sampler benchmark reads from ../shared/data, which
#   # does not travel by itself (without it that step is skipped)
#   mkdir -p .gpudata/shared/data/building_blocks .gpudata/shared/data/templates
#   cp ../shared/data/building_blocks/zincfrag_10k.smi.gz .gpudata/shared/data/building_blocks/
#   cp ../shared/data/templates/synflownet_hb.txt .gpudata/shared/data/templates/
#
# The call (device tool `run`; ~8 min of the 15 min of device time, leaving no room for a second full
# run: give the machine back afterwards):
#   command:   bash benchmarks/gpu_check.sh
#   carry:     [".whl", ".gpudata"]
#   timeout_s: 540
#
# test_checkpoints_move_between_cuda_and_cpu fails until Trainer.load_checkpoint reads checkpoints
# onto the CPU (map_location="cuda" turns the saved RNG states into CUDA tensors, which
# torch.set_rng_state refuses); tests that assume bit-exact resumes may differ on CUDA (atomics).
#
# Here (no GPU) it runs too, as a dry run of its plumbing: the CUDA tests skip, the CUDA benchmark
# says so. GPU_CHECK_BUDGET (seconds, default 470) caps the whole; parts that would not fit are skipped.
# GPU_CHECK_PARTS picks parts (default "tests models learner samplers cpu"), e.g. for a second call
# that reruns one: command `GPU_CHECK_PARTS=samplers bash benchmarks/gpu_check.sh`; GPU_CHECK_SAMPLERS
# the sampler counts (default "1 2 4").

set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-470}
PARTS=" ${GPU_CHECK_PARTS:-tests models learner samplers cpu} "
STARTED=$(date +%s)
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

elapsed() { echo $(($(date +%s) - STARTED)); }
left() { echo $((BUDGET - $(elapsed))); }
# part KEY NAME SECONDS: true when KEY is among the parts asked for and SECONDS still fit in the
# budget (else says it skips NAME)
part() {
  local key=$1
  shift
  if [[ $PARTS != *" $key "* ]]; then
    echo "=== skip $1: not in GPU_CHECK_PARTS"
    return 1
  fi
  if [ "$(left)" -lt "$2" ]; then
    echo "=== skip $1: $(left) s left of the budget, it needs $2 s"
    return 1
  fi
  echo "=== $1 (at $(elapsed) s, up to $2 s)"
}

# -- 0. packages ----------------------------------------------------------------------------------
if ! "$PY" -c "import rdkit, pydantic" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    echo "=== installing $(ls .whl/*.whl | wc -l) wheels into /tmp/site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || echo "!!! wheel install failed"
    export PYTHONPATH=/tmp/site
  else
    echo "!!! rdkit/pydantic missing and no .whl folder: carry .whl (see this script's header)"
  fi
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
# the reference data, where it travelled in .gpudata and ../shared is not there
if [ ! -e ../shared/data ] && [ -d .gpudata/shared/data ]; then
  mkdir -p ../shared && cp -r .gpudata/shared/data ../shared/ && echo "=== ../shared/data from .gpudata"
fi

# -- 1. the machine ------------------------------------------------------------------------------------
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  "$PY" - <<'EOF'
import os, platform, sys
import torch
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
for name in ("torch_geometric", "numpy", "rdkit", "pydantic", "pydantic_core", "scipy", "pytest"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"), os.path.dirname(module.__file__))
    except Exception as error:
        print(name, "MISSING", error)
print("cpus", os.cpu_count(), platform.machine(), "load", os.getloadavg())
EOF
} 2>&1 | tee "$OUT/env.txt"

# -- 2. tests ----------------------------------------------------------------------------------------
if part tests "CUDA tests" 100; then
  timeout 100 "$PY" -m pytest -v -p no:cacheprovider -rs tests/synflow/test_cuda.py 2>&1 \
    | tee "$OUT/pytest-cuda.txt"
  echo "exit: $?" | tee -a "$OUT/pytest-cuda.txt"
fi
if part models "model, objective and trainer tests on CUDA" 130; then
  timeout 130 "$PY" -m pytest -q -p no:cacheprovider -n 4 -m "not exact" -rfEs \
    tests/models tests/synflow/test_synthesis_env.py tests/synflow/test_search.py \
    tests/synflow/test_trainer_run.py tests/synflow/test_losses.py 2>&1 | tee "$OUT/pytest-models.txt"
  echo "exit: $?" | tee -a "$OUT/pytest-models.txt"
fi

# -- 3. the learner on the GPU -----------------------------------------------------------------------
if part learner "learner benchmark, CUDA" 150; then
  timeout 150 "$PY" benchmarks/learner.py --devices cuda --batches 64 256 1024 --pool 1024 \
    --steps 10 --time-limit 125 --cache-dir /tmp/synflow-cache --profile --out "$OUT/learner-cuda.json"
  echo "exit: $?"
fi

# -- 4. samplers (actor–learner): trained trajectories/s with 1, 2, 4 samplers ------------------------
# benchmarks/synflownet.py is being given sampler processes (training.samplers); this step runs once
# it has them: `synflownet.py samplers --samplers N`, or `throughput --samplers N`, whichever exists.
HELP=$("$PY" benchmarks/synflownet.py --help 2>&1 || true)
if [[ $PARTS != *" samplers "* ]]; then
  echo "=== skip samplers: not in GPU_CHECK_PARTS"
elif ! grep -q -- "--samplers" <<<"$HELP"; then
  echo "=== skip samplers: benchmarks/synflownet.py has no --samplers option yet"
elif [ ! -e ../shared/data/building_blocks/zincfrag_10k.smi.gz ]; then
  echo "=== skip samplers: ../shared/data not here (carry .gpudata, see the header)"
else
  if grep -qE "\{[a-z,]*samplers" <<<"$HELP"; then  # a subcommand of its own
    MODE=samplers
  else
    MODE=throughput
  fi
  for N in ${GPU_CHECK_SAMPLERS:-1 2 4}; do
    part samplers "samplers $N ($MODE)" 75 || break
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 250 \
      >/tmp/gpu-util-$N.csv 2>/dev/null &
    SMI=$!
    timeout 75 "$PY" benchmarks/synflownet.py $MODE --samplers $N --steps 6 --warmup 2 --backward route \
      >/tmp/samplers-$N.json
    CODE=$?
    kill "$SMI" 2>/dev/null
    UTIL=$(awk -F', *' '{u += $1; m = ($2 > m ? $2 : m); n++} END {if (n) printf "{\"gpu_util_pct\": %.1f, \"gpu_memory_mib_max\": %d, \"samples\": %d}", u / n, m, n; else print "null"}' /tmp/gpu-util-$N.csv 2>/dev/null)
    "$PY" - "$N" "$MODE" "$CODE" "${UTIL:-null}" /tmp/samplers-$N.json >>"$OUT/samplers.json" <<'EOF'
import json, re, sys
n, mode, code, util, path = sys.argv[1:]
text = open(path).read()
start = re.search(r"^\{$", text, re.M)  # the result, printed last with indent=2
try:
    result = json.loads(text[start.start():]) if start else {"output_tail": text[-2000:]}
except ValueError:
    result = {"output_tail": text[-2000:]}
print(json.dumps({"samplers": int(n), "mode": mode, "exit": int(code), "nvidia_smi": json.loads(util), "result": result}))
EOF
    tail -c 1500 /tmp/samplers-$N.json
  done
fi

# -- 5. the learner on this machine's CPU, for comparison ----------------------------------------------
if part cpu "learner benchmark, CPU" 60; then
  timeout 60 "$PY" benchmarks/learner.py --devices cpu --cpu-batches 64 --pool 256 --steps 5 \
    --time-limit 45 --cache-dir /tmp/synflow-cache --out "$OUT/learner-cpu.json" >/dev/null
  echo "exit: $?"
fi
echo "=== done in $(elapsed) s; files:"
ls -la "$OUT"
sleep 1  # let tee write the log's last lines
