#!/usr/bin/env bash
# The benchmark suite on a lent GPU machine, in one prepared call (about 3 to 5 minutes).
#
# That machine has Python 3.12 with torch, torchvision, h5py, pyyaml, click, tqdm, joblib and
# matplotlib, but no PyAV and no network: PyAV travels as a wheel in benchmarks/.whl (ignored by
# git; fetch it once here with the command below), installed only when `import av` fails.
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d benchmarks/.whl av==18.1.0
#
# Device tool call:  command "bash benchmarks/gpu_check.sh", carry ["benchmarks/.whl"], timeout_s 420.
# Everything it writes lands in $OUT (at most 8 files come back): nvidia-smi.txt, env.txt,
# suite.txt (the printed table and any error), results.json, pytest-gpu.txt.
#
# Knobs (environment): BENCH_MODE=full|quick (default full), BENCH_WORKERS (16), BENCH_DEVICE
# (cuda), BENCH_TEACHER (r3d_18), SUITE_TIMEOUT (seconds, 240), PY (python3). A dry run on a
# CPU: OUT=/tmp/gpu-check BENCH_DEVICE=cpu BENCH_MODE=quick BENCH_WORKERS=2 bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-$PWD/gpu-check-out}"
PY="${PY:-python3}"
MODE="${BENCH_MODE:-full}"
WORKERS="${BENCH_WORKERS:-16}"
DEVICE="${BENCH_DEVICE:-cuda}"
TEACHER="${BENCH_TEACHER:-r3d_18}"
SUITE_TIMEOUT="${SUITE_TIMEOUT:-240}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
start=$SECONDS
say() { echo "== [$((SECONDS - start)) s] $*"; }

say "machine"
{
    nvidia-smi || echo "nvidia-smi: not available"
    nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.max.sm,power.draw,temperature.gpu \
        --format=csv || true
    echo "cores: $(nproc)"
    uname -a
    free -g || true
    df -h /dev/shm /tmp || true # decoder workers hand frames over through /dev/shm
} >"$OUT/nvidia-smi.txt" 2>&1
head -n 12 "$OUT/nvidia-smi.txt"

say "packages"
if ! "$PY" -c "import av" 2>/dev/null || [[ -n "${BENCH_FORCE_WHEEL:-}" ]]; then
    shopt -s nullglob
    wheels=(benchmarks/.whl/*.whl)
    if ((${#wheels[@]} == 0)); then
        echo "PyAV is missing and benchmarks/.whl holds no wheel: carry benchmarks/.whl (see the header)" >&2
        exit 2
    fi
    timeout 180 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "${wheels[@]}"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
timeout 120 "$PY" - <<'EOF' 2>&1 | tee "$OUT/env.txt"
import importlib, os, sys
print("python", sys.version.split()[0], sys.executable, "cores", len(os.sched_getaffinity(0)))
for name in ("torch", "torchvision", "av", "h5py", "numpy", "yaml", "click", "tqdm", "joblib", "matplotlib"):
    module = importlib.import_module(name)
    print(f"{name} {getattr(module, '__version__', '?')} {getattr(module, '__file__', '')}")
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
import benchmarks.suite  # every project module the suite uses imports here
EOF

say "suite ($MODE, $WORKERS decoder processes, $DEVICE, timeout $SUITE_TIMEOUT s)"
args=(--workers "$WORKERS" --device "$DEVICE" --teacher "$TEACHER" --out "$OUT/results.json")
[[ "$MODE" == quick ]] && args+=(--quick)
suite_rc=0
timeout -k 15 "$SUITE_TIMEOUT" "$PY" -m benchmarks.suite "${args[@]}" 2>&1 | tee "$OUT/suite.txt" || suite_rc=$?
((suite_rc == 124)) && echo "suite stopped at its $SUITE_TIMEOUT s limit: results.json holds the parts that finished"

say "pytest -m gpu"
mapfile -t gpu_tests < <(grep -rlE "mark\.gpu" tests --include='*.py' || true)
test_rc=0
if ((${#gpu_tests[@]})); then
    timeout -k 10 90 "$PY" -m pytest -q -m gpu -p no:cacheprovider "${gpu_tests[@]}" 2>&1 |
        tee "$OUT/pytest-gpu.txt" || test_rc=$?
    ((test_rc == 5)) && test_rc=0 # every test deselected
else
    echo "no test is marked gpu" | tee "$OUT/pytest-gpu.txt"
fi

say "after"
nvidia-smi --query-gpu=name,memory.used,clocks.sm,power.draw,temperature.gpu --format=csv >>"$OUT/nvidia-smi.txt" 2>&1 ||
    true
ls -l "$OUT"
say "done: suite rc $suite_rc, gpu tests rc $test_rc"
exit $((suite_rc || test_rc))
