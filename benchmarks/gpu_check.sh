#!/usr/bin/env bash
# One prepared GPU check for a lent GPU machine (no network there; about 3 min of its 10).
#
#   1. Here (network, once):    bash benchmarks/gpu_check.sh --prepare
#        fills .whl/ (git-ignored) with Python 3.12 wheels of the OpenMMLab stack and its missing
#        dependencies, mmcv's Python files, and the mmcv sdist (for --build-mmcv).
#   2. There (device tool):     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=600)
#        installs the carried wheels into /tmp/site (the machine's own torch stays), installs mmcv
#        with benchmarks/mmcv_ext_shim.py as mmcv._ext (torchvision's CUDA nms/RoIAlign: compiling
#        mmcv's CUDA ops takes longer than the machine's 10 minutes; add --build-mmcv to try it
#        anyway, time-boxed, falling back to the shim), then runs benchmarks/gpu_bench.py: AMP
#        training iterations of Dual vs single configs, Dual-Swin-L HTC 1600x1400 with/without
#        with_cp, inference img/s. Results: $OUT/gpu_check.{json,md,log}.
#   3. Here, without a GPU:     bash benchmarks/gpu_check.sh --dry-run
#        the same install steps into a temporary dir (mmcv Python files + shim, with this
#        machine's torch), then gpu_bench.py --dry-run: CPU, fp32, tiny shapes, one iteration.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHL=$ROOT/.whl
MODE=gpu
BUILD_MMCV=0
for arg in "$@"; do
  case $arg in
    --prepare) MODE=prepare ;;
    --dry-run) MODE=dry ;;
    --build-mmcv) BUILD_MMCV=1 ;;
    *) echo "unknown argument $arg (use --prepare, --dry-run, --build-mmcv)" >&2; exit 2 ;;
  esac
done
MMCV_VERSION=2.1.0
# Python 3.12 wheels the device image lacks (KINDS.md lists what it has: torch, torchvision,
# numpy, scipy, opencv, matplotlib, rich, einops, tqdm, six, ...).
WHEELS=(mmengine==0.10.7 mmdet==3.3.0 mmpretrain==1.2.0 pycocotools==2.0.11 addict yapf
        platformdirs tomli termcolor terminaltables shapely mat4py modelindex ordered-set)

if [[ $MODE == prepare ]]; then
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  mkdir -p "$WHL"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHL" "${WHEELS[@]}"
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$WHL"
  # mmcv's Python files without the compiled extension (built for this machine's Python/torch).
  rm -rf "$WHL/mmcv_py" && mkdir -p "$WHL/mmcv_py"
  MMCV_DIR=$("$PY" -c 'import os, mmcv; print(os.path.dirname(mmcv.__file__))')
  (cd "$(dirname "$MMCV_DIR")" && tar cf - --exclude='*.so' --exclude='__pycache__' --exclude='ops/csrc' mmcv) \
    | tar xf - -C "$WHL/mmcv_py"
  du -sh "$WHL"; ls "$WHL"
  exit 0
fi

if [[ $MODE == dry ]]; then
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  SITE=$(mktemp -d)
  OUT=${OUT:-$(mktemp -d)}
  trap 'rm -rf "$SITE"' EXIT
  MMCV_DIR=$("$PY" -c 'import os, mmcv; print(os.path.dirname(mmcv.__file__))')
  (cd "$(dirname "$MMCV_DIR")" && tar cf - --exclude='*.so' --exclude='__pycache__' --exclude='ops/csrc' mmcv) \
    | tar xf - -C "$SITE"
else
  PY=${PYTHON:-python3}
  SITE=/tmp/site
  OUT=${OUT:?set OUT to the results folder}
  [[ -d $WHL/mmcv_py ]] || { echo "no .whl/mmcv_py: run 'bash benchmarks/gpu_check.sh --prepare' here and carry .whl" >&2; exit 2; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHL"/*.whl
  cp -r "$WHL/mmcv_py/mmcv" "$SITE/"
fi
cp "$ROOT/benchmarks/mmcv_ext_shim.py" "$SITE/mmcv/_ext.py"
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}

if [[ $MODE == gpu && $BUILD_MMCV == 1 ]]; then
  # Compiled CUDA ops, if they build within 6 minutes (16 cores, Hopper only); else keep the shim.
  if PIP_NO_INDEX=1 PIP_FIND_LINKS=$WHL FORCE_CUDA=1 MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 \
      timeout 360 bash "$ROOT/tools/misc/build_mmcv.sh" "$PY" "$MMCV_VERSION" /tmp/mmcv-wheel \
      >"$OUT/build_mmcv.log" 2>&1; then
    rm -rf "$SITE/mmcv"
    "$PY" -m pip install -q --no-index --no-deps --target "$SITE" /tmp/mmcv-wheel/mmcv-*.whl
  else
    echo "mmcv CUDA build failed or timed out (see build_mmcv.log): using the torchvision shim"
  fi
fi

"$PY" -c 'import torch, mmcv, mmdet, mmengine, cbnet; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "| mmcv", mmcv.__version__, "| mmdet", mmdet.__version__)'
ARGS=(--out "$OUT")
[[ $MODE == dry ]] && ARGS+=(--dry-run)
set -o pipefail
PYTHONUNBUFFERED=1 timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" "$ROOT/benchmarks/gpu_bench.py" "${ARGS[@]}" 2>&1 \
  | tee "$OUT/gpu_check.log"
if [[ $MODE == gpu ]]; then
  # The composite-overhead benchmark on the GPU too (seconds there), if time is left.
  PYTHONUNBUFFERED=1 timeout 90 "$PY" "$ROOT/benchmarks/backbone_overhead.py" --device cuda --rounds 10 \
    --out-dir "$OUT" 2>&1 | tail -n 30 || echo "backbone_overhead did not finish"
fi
echo "results in $OUT"
