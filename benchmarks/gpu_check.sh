#!/usr/bin/env bash
# The GPU-only checks of benchmarks/ as one self-contained script for any CUDA machine:
# AMP training img/s and peak memory of Dual vs single detectors (Faster R-CNN R50, Mask R-CNN
# Swin-T, DINO-R50 with sequential and stacked branches), Dual-Swin-L HTC at 1600x1400 with/without with_cp,
# inference img/s, then the composite-overhead benchmark on CUDA. Measurements: benchmarks/gpu_bench.py.
# Deployment (where mmdeploy is installed, requirements/deploy.txt): Dual vs single R50 Faster R-CNN exported to
# TensorRT fp16, agreement with PyTorch and img/s (benchmarks/deploy.py --backend tensorrt, needs the tensorrt
# package); the dry run exports the TensorRT graph on the CPU and checks its TensorRT ops.
#
#   bash benchmarks/gpu_check.sh [--out DIR]   # on the CUDA machine; results in DIR (default work_dirs/gpu_check):
#                                              # gpu_check.{json,md,log}, backbone_overhead.{json,md}
#   bash benchmarks/gpu_check.sh --dry-run     # anywhere: the same steps and code on the CPU, fp32, tiny sizes
#   bash benchmarks/gpu_check.sh --prepare     # with network access, for a CUDA machine without it: fills .whl/
#
# The Python environment on the CUDA machine (PYTHON, default python3), in this order:
#   1. as it is, if it imports mmcv with its compiled ops, mmengine, mmdet and mmpretrain (see the README's
#      "Install on a GPU cluster"); cbnet is imported from this checkout;
#   2. else the wheels that --prepare put into .whl/ (git-ignored; copy the checkout with it): the OpenMMLab
#      stack installed into a temporary dir on top of the machine's torch, and mmcv's Python files with
#      benchmarks/mmcv_ext_shim.py as mmcv._ext (NMS, RoIAlign, deformable attention and soft-NMS on torch and
#      torchvision kernels; no compilation). `python benchmarks/mmcv_ext_shim.py` compares it with mmcv's ops.
# --prepare downloads wheels for TARGET_PYTHON (default: this machine's Python version, e.g. 3.12).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHL=$ROOT/.whl
CMDLINE="bash benchmarks/gpu_check.sh${*:+ $*}"
MODE=gpu
OUT=${OUT:-$ROOT/work_dirs/gpu_check}
while [[ $# -gt 0 ]]; do
  case $1 in
    --prepare) MODE=prepare ;;
    --dry-run) MODE=dry ;;
    --out) OUT=$2; shift ;;
    *) echo "unknown argument $1 (use --out DIR, --dry-run, --prepare)" >&2; exit 2 ;;
  esac
  shift
done
MMCV_VERSION=2.1.0
# The OpenMMLab stack and the pure-Python dependencies a CUDA image with torch, torchvision, numpy, scipy,
# opencv and matplotlib usually lacks.
WHEELS=(mmengine==0.10.7 mmdet==3.3.0 mmpretrain==1.2.0 pycocotools==2.0.11 addict yapf
        platformdirs tomli termcolor terminaltables shapely mat4py modelindex ordered-set)

copy_mmcv_python_files() {  # $1: python with mmcv installed, $2: destination (mmcv/ without compiled parts)
  local dir
  dir=$("$1" -c 'import os, mmcv; print(os.path.dirname(mmcv.__file__))')
  (cd "$(dirname "$dir")" && tar cf - --exclude='*.so' --exclude='__pycache__' --exclude='ops/csrc' mmcv) \
    | tar xf - -C "$2"
}

if [[ $MODE == prepare ]]; then
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  TARGET_PYTHON=${TARGET_PYTHON:-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
  mkdir -p "$WHL"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$TARGET_PYTHON" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHL" "${WHEELS[@]}"
  rm -rf "$WHL/mmcv_py" && mkdir -p "$WHL/mmcv_py"
  copy_mmcv_python_files "$PY" "$WHL/mmcv_py"
  du -sh "$WHL"; ls "$WHL"
  exit 0
fi

mkdir -p "$OUT"
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
if [[ $MODE == dry ]]; then
  PY=${PYTHON:-$ROOT/.venv/bin/python}
  copy_mmcv_python_files "$PY" "$SITE"   # mmcv without its compiled ops, as on a machine without them
  cp "$ROOT/benchmarks/mmcv_ext_shim.py" "$SITE/mmcv/_ext.py"
else
  PY=${PYTHON:-python3}
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  if "$PY" -c 'import mmcv._ext, mmdet, mmengine, mmpretrain' 2>/dev/null; then
    echo "using the installed OpenMMLab stack with mmcv's compiled ops"
  elif [[ -d $WHL/mmcv_py ]]; then
    echo "mmcv with compiled ops is not installed: using .whl/ and the mmcv_ext_shim"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHL"/*.whl
    cp -r "$WHL/mmcv_py/mmcv" "$SITE/"
    cp "$ROOT/benchmarks/mmcv_ext_shim.py" "$SITE/mmcv/_ext.py"
  else
    echo "$PY cannot import mmcv._ext, mmdet, mmengine and mmpretrain, and there is no .whl/: install them" \
         "(README: Install on a GPU cluster) or run 'bash benchmarks/gpu_check.sh --prepare' where pip has network" \
         "access and bring .whl/ along" >&2
    exit 2
  fi
fi
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}

"$PY" -c 'import torch, mmcv, mmdet, mmengine, cbnet; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "| mmcv", mmcv.__version__, "| mmdet", mmdet.__version__)'
ARGS=(--out "$OUT" --command "$CMDLINE")
[[ $MODE == dry ]] && ARGS+=(--dry-run)
PYTHONUNBUFFERED=1 "$PY" "$ROOT/benchmarks/gpu_bench.py" "${ARGS[@]}" 2>&1 | tee "$OUT/gpu_check.log"
if [[ $MODE == gpu ]]; then  # the composite-overhead benchmark on CUDA too (seconds there)
  PYTHONUNBUFFERED=1 "$PY" "$ROOT/benchmarks/backbone_overhead.py" --device cuda --rounds 10 --out-dir "$OUT" 2>&1 \
    | tail -n 30
fi
if "$PY" -c 'import mmdeploy' 2>/dev/null; then
  if [[ $MODE == dry ]]; then
    PYTHONUNBUFFERED=1 "$PY" "$ROOT/benchmarks/deploy.py" --backend tensorrt --dry-run --shape 320 320 --out-dir "$OUT" \
      2>&1 | tail -n 20
  elif "$PY" -c 'import tensorrt' 2>/dev/null; then
    PYTHONUNBUFFERED=1 "$PY" "$ROOT/benchmarks/deploy.py" --backend tensorrt --rounds 10 --out-dir "$OUT" 2>&1 \
      | tail -n 40
  else
    echo "tensorrt is not installed (pip install tensorrt for this CUDA): TensorRT deployment check skipped"
  fi
else
  echo "mmdeploy is not installed (requirements/deploy.txt): deployment checks skipped"
fi
echo "results in $OUT"
