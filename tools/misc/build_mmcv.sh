#!/usr/bin/env bash
# Build an mmcv wheel with compiled ops against the torch installed in $PYTHON's environment.
#   tools/misc/build_mmcv.sh PYTHON MMCV_VERSION WHEEL_DIR
# Why not plain `pip install mmcv`: mmcv only ships an sdist for torch 2.x, and its setup.py hard-codes
# `-std=c++17`, while torch >= 2.10 headers require C++20 ("C++20 or later compatible compiler is required to
# use ATen"). We patch the flag to C++20 and build without build isolation, so the ops compile against the
# torch in the venv (with isolation, or without torch, mmcv silently installs without `mmcv._ext`).
# FORCE_CUDA=1 in the environment builds the CUDA ops as well (GPU machines, needs nvcc).
set -euo pipefail
PYTHON=$1; VERSION=$2; WHEEL_DIR=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m pip download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$VERSION" -d "$work"
tar xzf "$work"/mmcv-"$VERSION".tar.gz -C "$work"
src="$work/mmcv-$VERSION"
sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
mkdir -p "$WHEEL_DIR"
MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" MAX_JOBS="${MAX_JOBS:-2}" \
  "$PYTHON" -m pip wheel --no-build-isolation --no-deps --no-cache-dir -w "$WHEEL_DIR" "$src"
