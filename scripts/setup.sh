#!/usr/bin/env bash
# Set up kd_det's project-local environment in .venv/ (idempotent).
#
#   torch 2.14.1 / torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 with compiled ops,
#   mmdet 3.3.0, mmpretrain 1.2.0, pycocotools 2.0.11, scikit-learn, captum 0.9.0
#   (Grad-CAM for tools/analysis/what_distilled.py), pytest, ruff, kd_det (editable).
#
# mmcv 2.1.0 has no binary wheel on PyPI and its setup.py does not compile against torch 2.14
# (it hard-codes -std=c++14/17; torch's headers need C++20). We build it from the registry's
# source archive with the flag patched (scripts/build_mmcv.py: about 20 min on 2 cores, with a
# progress line), once, and cache the wheel in $KD_DET_CACHE/wheels (default ~/.cache/kd_det).
# If $KD_DET_WHEELS names a folder holding a matching mmcv wheel, that wheel is used instead.
# mmcv is installed only from a finished wheel, so an interrupted build leaves no broken mmcv;
# a re-run resumes the compile.
#
# A second run compares a stamp of this script's inputs and returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
CACHE="${KD_DET_CACHE:-$HOME/.cache/kd_det}"
WHEELS="${KD_DET_WHEELS:-}"
STAMP="$VENV/.kd_det-setup-stamp"

TORCH_PKGS=(torch==2.14.1 torchvision==0.29.1)
BUILD_PKGS=("setuptools>=70,<81" wheel ninja)
MMCV_VERSION=2.1.0
STACK_PKGS=(mmengine==0.10.7 mmdet==3.3.0 mmpretrain==1.2.0 pycocotools==2.0.11
            scikit-learn scipy matplotlib captum==0.9.0 pytest ruff)

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

want_stamp() {
  { cat "$ROOT/scripts/setup.sh"; cat "$ROOT/pyproject.toml"; } | sha256sum | cut -d' ' -f1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(want_stamp)" ]] \
   && "$VENV/bin/python" -c "import mmcv.ops, mmdet, mmpretrain, kd_det" 2>/dev/null; then
  log "environment in .venv is up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24"

have() { "$VENV/bin/python" - "$@" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, _, want = spec.partition("==")
    try:
        got = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if want and got.split("+")[0] != want:
        sys.exit(1)
PYEOF
}

if ! have "${TORCH_PKGS[@]}"; then
  log "installing ${TORCH_PKGS[*]} (about 3 GB of CUDA wheels; they also run on the CPU)"
  "${PIP[@]}" install "${TORCH_PKGS[@]}"
fi
# mmcv imports mmengine and these at import time; install them before checking mmcv.ops
"${PIP[@]}" install -q "${BUILD_PKGS[@]}" mmengine==0.10.7 addict numpy packaging Pillow pyyaml yapf opencv-python

find_mmcv_wheel() {  # prints the path of a usable mmcv wheel in folder $1, if any
  local dir="$1"
  [[ -d "$dir" ]] || return 0
  local tag
  tag="cp$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
  ls "$dir"/mmcv-"$MMCV_VERSION"-"$tag"-"$tag"-linux_"$(uname -m)".whl 2>/dev/null | head -n1 || true
}

mmcv_has_ops() {
  "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'; from mmcv.ops import nms" 2>/dev/null
}

if ! mmcv_has_ops; then
  wheel=""
  [[ -n "$WHEELS" ]] && wheel="$(find_mmcv_wheel "$WHEELS")"
  if [[ -n "$wheel" ]]; then
    log "using prebuilt mmcv wheel $wheel (from KD_DET_WHEELS)"
  else
    wheel="$(find_mmcv_wheel "$CACHE/wheels")"
    if [[ -n "$wheel" ]]; then
      log "using cached mmcv wheel $wheel"
    else
      log "building mmcv $MMCV_VERSION with ops from source: about 20 minutes on 2 cores"
      "$VENV/bin/python" "$ROOT/scripts/build_mmcv.py" build "$CACHE/wheels" --jobs "$(nproc)"
      wheel="$(find_mmcv_wheel "$CACHE/wheels")"
      [[ -n "$wheel" ]] || { log "mmcv build produced no wheel"; exit 1; }
      log "built $wheel"
    fi
  fi
  "${PIP[@]}" install --no-deps --force-reinstall "$wheel"
  mmcv_has_ops || { log "mmcv installed but mmcv.ops does not import"; exit 1; }
fi

log "installing the OpenMMLab stack and tools"
"${PIP[@]}" install -q "${STACK_PKGS[@]}"
log "installing kd_det (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

"$VENV/bin/python" -c "import torch, mmcv, mmcv.ops, mmdet, mmpretrain, mmengine, kd_det; \
print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, \
'| mmpretrain', mmpretrain.__version__, '| mmengine', mmengine.__version__)"
want_stamp > "$STAMP"
log "done"
