#!/usr/bin/env bash
# kd_det on a CUDA machine: build mmcv's CUDA ops for that machine's torch, run the CUDA tests
# and benchmark the distillation step on the GPU. Written for a machine with a CUDA build of
# torch (e.g. an H200 with torch 2.14 CUDA wheels), nvcc and ninja, and no network.
#
#   bash scripts/gpu_check.sh --prepare         # where PyPI is reachable: wheels + mmcv source
#   bash scripts/gpu_check.sh [STEP ...]        # on the GPU machine; default all steps:
#                                               #   env build data test bench
#   bash scripts/gpu_check.sh --dry-run [STEP]  # print what each step runs, run nothing
#
# Steps (each can be run alone; later calls on the same machine reuse what earlier ones left):
#   env    install the carried wheels (.whl/) into $GPU_CHECK_SITE, print the versions and GPU
#   build  compile mmcv 2.1.0 with CUDA ops (scripts/build_mmcv.py, MMCV_WITH_OPS=1 FORCE_CUDA=1,
#          TORCH_CUDA_ARCH_LIST of this GPU), at most $GPU_CHECK_BUILD_TIMEOUT s (default 330);
#          a build cut off there resumes where ninja stopped when the step runs again; the wheel
#          is kept in .gpu_cache/ and reused
#   data   a small digits set (tools/make_digits.py) and a COCO-format set of random
#          1333 x 800 images with boxes (the full-size benchmark's input; weights are random
#          anyway)
#   test   the CUDA tests: pytest -k cuda tests/test_ema_amp.py tests/test_numerics.py
#          (distiller training/validation with fp32/bf16/fp16 teachers, AMP fp16/bf16 with EMA,
#          one host sync per step for the NaN/inf check), at most 100 s
#   bench  tools/benchmark.py --device cuda, teacher fp32 and bf16: the digits SRD pair
#          (batch 8) and the full-size RetinaNet R-101 -> R-50 SRD config at 1333 x 800
#          (batch 2, the 1x recipe's per-GPU batch, random weights, with peak GPU memory); the
#          learning rate is 0, so random weights cannot diverge to NaN (which the distiller's
#          nonfinite check would stop on) while every step still runs the optimizer's arithmetic
#
# Results go to $GPU_CHECK_OUT (default: $OUT if set, else ./gpu_check_out): summary.txt (the
# versions, step times, test summary and benchmark reports), pytest.log, mmcv_build.log (tail)
# and bench_<pair>_<dtype>.json. Step limits: build 330 s, test 100 s, bench 4 runs of at most
# 45 / 45 / 75 / 75 s: 670 s (11 min 10 s) in all, plus env and data (seconds). A build cut off
# at its limit fails the call; the next call on the same (warm) machine resumes it.
#
# The machine needs no network: --prepare (run here, where PyPI is reachable) downloads the
# wheels the GPU machine's Python lacks (versions pinned to this project's .venv; Python
# $GPU_CHECK_PYVER, default 3.12, manylinux x86-64) into .whl/ and mmcv's patched source into
# .gpu_cache/build/, and adds both folders to .git/info/exclude (they go to the GPU machine with
# the working tree, never into a commit).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
SITE="${GPU_CHECK_SITE:-/tmp/kd_det_gpu_site}"
WORK="${GPU_CHECK_WORK:-/tmp/kd_det_gpu_work}"
RESULTS="${GPU_CHECK_OUT:-${OUT:-$ROOT/gpu_check_out}}"
WHEELS="$ROOT/.whl"
CACHE="$ROOT/.gpu_cache"
BUILD_TIMEOUT="${GPU_CHECK_BUILD_TIMEOUT:-330}"
TEST_TIMEOUT="${GPU_CHECK_TEST_TIMEOUT:-100}"
COCO_SIZE="${GPU_CHECK_COCO_SIZE:-1333x800}"
COCO_IMAGES="${GPU_CHECK_COCO_IMAGES:-4}"
DIGITS_IMAGES="${GPU_CHECK_DIGITS_IMAGES:-64}"
PYVER="${GPU_CHECK_PYVER:-3.12}"
MMCV_VERSION=2.1.0
ALL_STEPS=(env build data test bench)
# what the GPU image lacks (its torch, numpy, scipy, matplotlib, opencv, rich, pytest ... stay)
CARRIED=(mmengine mmdet mmpretrain pycocotools addict yapf platformdirs termcolor terminaltables
         shapely mat4py modelindex model-index ordered-set importlib-metadata "setuptools<81")
DIGITS_CFG=configs/srd/srd_retinanet-w32-w8_fpn_24e_digits.py
COCO_CFG=configs/srd/srd_retinanet-r101-r50_fpn_1x_coco.py
CUDA_TESTS=(tests/test_ema_amp.py tests/test_numerics.py)

DRY=0
PREPARE=0
STEPS=()
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --prepare) PREPARE=1 ;;
    -h|--help) usage; exit 0 ;;
    all) STEPS+=("${ALL_STEPS[@]}") ;;
    env|build|data|test|bench) STEPS+=("$arg") ;;
    *) echo "gpu_check.sh: unknown step or option '$arg'; steps: ${ALL_STEPS[*]} (or all)," \
            "options: --dry-run --prepare --help" >&2; exit 2 ;;
  esac
done
[[ ${#STEPS[@]} -gt 0 ]] || STEPS=("${ALL_STEPS[@]}")

log() { printf '[gpu_check %(%H:%M:%S)T] %s\n' -1 "$*"; }
# run CMD...: print it; run it unless --dry-run
run() {
  printf '  +'
  printf ' %q' "$@"
  printf '\n'
  [[ $DRY -eq 1 ]] || "$@"
}
summary() { [[ $DRY -eq 1 ]] || printf '%s\n' "$*" >>"$RESULTS/summary.txt"; }

# ------------------------------------------------------------------------------------------
# --prepare: here, with the package registry
# ------------------------------------------------------------------------------------------
prepare() {
  local venv_py="$ROOT/.venv/bin/python"
  [[ -x "$venv_py" ]] || { echo "--prepare needs the project's .venv (bash scripts/setup.sh)" >&2; exit 1; }
  local exclude
  exclude="$(git rev-parse --git-dir)/info/exclude"
  log "ignoring .whl/ and .gpu_cache/ locally ($exclude): they travel, they are never committed"
  if [[ $DRY -eq 0 ]]; then
    mkdir -p "$(dirname "$exclude")"
    for entry in /.whl/ /.gpu_cache/ /gpu_check_out/; do
      grep -qxF "$entry" "$exclude" 2>/dev/null || echo "$entry" >>"$exclude"
    done
  fi
  # pin each package to the version this project's venv runs (a bound as given stays)
  local specs=()
  mapfile -t specs < <("$venv_py" - "${CARRIED[@]}" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version

for name in sys.argv[1:]:
    try:
        print(name if "<" in name else f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(name)
PYEOF
)
  log "wheels for CPython $PYVER (manylinux x86-64) into .whl/"
  run "$venv_py" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEELS" "${specs[@]}"
  log "mmcv $MMCV_VERSION source, patched for C++20, into .gpu_cache/build/"
  run "$venv_py" scripts/build_mmcv.py prepare "$CACHE/build"
  log "take .whl/ and .gpu_cache/ to the GPU machine with the working tree"
}

# ------------------------------------------------------------------------------------------
# the steps, on the GPU machine
# ------------------------------------------------------------------------------------------
use_env() {  # the carried packages and kd_det first on the path
  export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1
}

require_gpu() {
  [[ $DRY -eq 1 ]] && return 0
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check.sh: no CUDA device (torch.cuda.is_available() is False for $PY):" \
         "this script runs on a GPU machine; --dry-run shows its steps" >&2
    exit 1
  fi
}

# the carried wheels into $SITE, unless the stack imports already (installed there by an
# earlier call on this machine with the same wheels, or part of this Python's environment)
install_wheels() {
  local stamp="$SITE/.kd_det-wheels" want
  want="$( (ls "$WHEELS" 2>/dev/null || true) | sha256sum | cut -d' ' -f1)"
  if [[ $DRY -eq 0 ]] && "$PY" -c "import mmengine, mmdet, mmpretrain" 2>/dev/null; then
    [[ ! -f "$stamp" || "$(cat "$stamp")" == "$want" ]] && return 0
  fi
  local wheels=("$WHEELS"/*.whl)
  if [[ ! -e "${wheels[0]}" && $DRY -eq 0 ]]; then
    echo "gpu_check.sh: $PY lacks mmengine/mmdet/mmpretrain and .whl/ holds no wheels: run" \
         "'bash scripts/gpu_check.sh --prepare' where the package registry is reachable and" \
         "bring .whl/ and .gpu_cache/ along" >&2
    exit 1
  fi
  run "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl
  [[ $DRY -eq 1 ]] || echo "$want" >"$stamp"
}

step_env() {
  install_wheels
  local report=(-c "
import platform, subprocess, torch, mmengine, mmdet, mmpretrain
print('python', platform.python_version(), '| torch', torch.__version__, '| CUDA', torch.version.cuda)
print('GPU', torch.cuda.get_device_name(0), '| capability', torch.cuda.get_device_capability(0))
print('mmengine', mmengine.__version__, '| mmdet', mmdet.__version__, '| mmpretrain', mmpretrain.__version__)
print(subprocess.run(['nvcc', '--version'], capture_output=True, text=True).stdout.strip().splitlines()[-1])
")
  printf '  + %s -c <versions of python, torch, CUDA, GPU, mmengine, mmdet, mmpretrain, nvcc>\n' "$PY"
  [[ $DRY -eq 1 ]] || "$PY" "${report[@]}" | tee -a "$RESULTS/summary.txt"
}

mmcv_cuda_ok() {  # mmcv's compiled NMS runs on the GPU
  "$PY" -c "
import torch
from mmcv.ops import nms
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]], device='cuda')
kept, index = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device='cuda'), 0.5)
assert index.tolist() == [0, 2], index
" 2>/dev/null
}

step_build() {
  if [[ $DRY -eq 0 ]] && mmcv_cuda_ok; then
    log "mmcv with CUDA ops is installed already"; summary "build: mmcv CUDA ops already installed"
    return 0
  fi
  local wheel
  wheel="$(ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    if [[ $DRY -eq 0 && ! -f "$CACHE/build/mmcv-$MMCV_VERSION/.kd_det-patched" ]]; then
      echo "gpu_check.sh: no prepared mmcv source in .gpu_cache/build (this machine cannot" \
           "download it): run 'bash scripts/gpu_check.sh --prepare' where PyPI is reachable and" \
           "bring .gpu_cache/ along" >&2
      exit 1
    fi
    local arch="9.0" jobs
    [[ $DRY -eq 1 ]] || arch="$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))")"
    jobs="$(nproc)"
    local start=$SECONDS rc=0
    run timeout "$BUILD_TIMEOUT" env MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch" \
      MAX_JOBS="$jobs" "$PY" scripts/build_mmcv.py build "$CACHE" --jobs "$jobs" || rc=$?
    [[ $DRY -eq 1 ]] || tail -n 200 "$CACHE/build/mmcv-$MMCV_VERSION.log" >"$RESULTS/mmcv_build.log" 2>/dev/null || true
    if [[ $rc -eq 124 ]]; then
      summary "build: stopped at its ${BUILD_TIMEOUT}s limit; run the build step again to resume"
      echo "gpu_check.sh: the mmcv build ran past ${BUILD_TIMEOUT}s; the compiled units are" \
           "kept in .gpu_cache/build: run 'bash scripts/gpu_check.sh build' again to resume" >&2
      exit 1
    elif [[ $rc -ne 0 ]]; then
      summary "build: failed (exit $rc), see mmcv_build.log"; exit "$rc"
    fi
    summary "build: mmcv $MMCV_VERSION with CUDA ops for sm_${arch/./} in $((SECONDS - start)) s"
    wheel="$(ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || echo "$CACHE/mmcv-$MMCV_VERSION-<tag>.whl")"
  fi
  run "$PY" -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target "$SITE" "$wheel"
  printf '  + %s -c <mmcv.ops.nms on CUDA tensors>\n' "$PY"
  if [[ $DRY -eq 0 ]] && ! mmcv_cuda_ok; then
    summary "build: the installed mmcv cannot run nms on CUDA"; exit 1
  fi
}

step_data() {
  run "$PY" tools/make_digits.py --out "$WORK/digits" --num-train "$DIGITS_IMAGES" --num-val 16 \
    --only det
  printf '  + %s - <write %s COCO-format images of %s px with boxes into %s>\n' \
    "$PY" "$COCO_IMAGES" "$COCO_SIZE" "$WORK/coco"
  [[ $DRY -eq 1 ]] && return 0
  "$PY" - "$WORK/coco" "$COCO_SIZE" "$COCO_IMAGES" <<'PYEOF'
"""A COCO-format train set of random images with a few boxes each (the 80 COCO classes)."""
import json
import sys
from pathlib import Path

import numpy as np
from mmdet.datasets import CocoDataset
from PIL import Image

root, size, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
width, height = (int(v) for v in size.split("x"))
classes = CocoDataset.METAINFO["classes"]
rng = np.random.default_rng(0)
(root / "train2017").mkdir(parents=True, exist_ok=True)
(root / "annotations").mkdir(parents=True, exist_ok=True)
images, annotations = [], []
for i in range(1, count + 1):
    name = f"{i:012d}.jpg"
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "train2017" / name, quality=90)
    images.append(dict(id=i, file_name=name, width=width, height=height))
    for _ in range(3):
        w, h = (int(v) for v in rng.integers(min(width, height) // 8, min(width, height) // 2, 2))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        annotations.append(dict(id=len(annotations) + 1, image_id=i, iscrowd=0, area=w * h,
                                category_id=int(rng.integers(1, len(classes) + 1)),
                                bbox=[x, y, w, h]))
categories = [dict(id=k + 1, name=name) for k, name in enumerate(classes)]
(root / "annotations" / "instances_train2017.json").write_text(
    json.dumps(dict(images=images, annotations=annotations, categories=categories)))
print(f"{count} images of {width}x{height} with {len(annotations)} boxes in {root}")
PYEOF
}

# logged FILE CMD...: run CMD with its output also appended to FILE (not in --dry-run)
logged() {
  local file="$1"
  shift
  if [[ $DRY -eq 1 ]]; then "$@"; else "$@" 2>&1 | tee -a "$file"; fi
}

step_test() {
  # -m 'not build' replaces the default 'not slow and not build': slow CUDA tests run too
  logged "$RESULTS/pytest.log" run timeout "$TEST_TIMEOUT" "$PY" -m pytest -q -p no:cacheprovider \
    -m "not build" -k cuda -rs "${CUDA_TESTS[@]}"
}

bench() {  # bench NAME CONFIG LIMIT ARGS...: tools/benchmark.py on the GPU, at most LIMIT s
  local name="$1" config="$2" limit="$3"
  shift 3
  logged "$RESULTS/bench.txt" run timeout "$limit" "$PY" tools/benchmark.py "$config" \
    --device cuda "$@" --json "$RESULTS/bench_$name.json"
}

step_bench() {
  local failed=0 dtype
  for dtype in fp32 bf16; do
    bench "digits_$dtype" "$DIGITS_CFG" 45 --teacher-dtype "$dtype" --batch-size 8 \
      --data-root "$WORK/digits/det/" --cfg-options model.teacher_ckpt=None \
      optim_wrapper.optimizer.lr=0.0 \
      --iters 20 --warmup 5 --no-memory || failed=1
  done
  for dtype in fp32 bf16; do
    bench "r101-r50_$dtype" "$COCO_CFG" 75 --teacher-dtype "$dtype" --batch-size 2 \
      --data-root "$WORK/coco/" --cfg-options model.teacher_ckpt=None \
      optim_wrapper.optimizer.lr=0.0 \
      --iters 20 --warmup 5 || failed=1
  done
  return "$failed"
}

# ------------------------------------------------------------------------------------------

if [[ $PREPARE -eq 1 ]]; then
  prepare
  exit 0
fi

use_env
for step in "${STEPS[@]}"; do
  case "$step" in build|test|bench|env) require_gpu ;; esac
done
[[ $DRY -eq 1 ]] || mkdir -p "$RESULTS" "$WORK"
case " ${STEPS[*]} " in *" env "*) ;; *) [[ $DRY -eq 1 ]] || install_wheels ;; esac
[[ $DRY -eq 0 ]] || log "(dry run: TORCH_CUDA_ARCH_LIST shows 9.0, an H200's; the build step reads the GPU's)"
[[ $DRY -eq 1 ]] || rm -f "$RESULTS/pytest.log" "$RESULTS/bench.txt"
status=0
for step in "${STEPS[@]}"; do
  log "step $step"
  start=$SECONDS
  rc=0
  "step_$step" || rc=$?
  if [[ "$step" == test && $DRY -eq 0 ]]; then
    summary "test: $(grep -E '[0-9]+ (passed|failed|skipped|error)' "$RESULTS/pytest.log" | tail -n1 || true)"
  fi
  summary "step $step: exit $rc, $((SECONDS - start)) s"
  [[ $rc -eq 0 ]] || { status=$rc; log "step $step failed (exit $rc)"; }
done
if [[ $DRY -eq 0 && -f "$RESULTS/bench.txt" ]]; then
  grep -vE '^(20[0-9]{2}/|[0-9]{2}/[0-9]{2} )' "$RESULTS/bench.txt" >>"$RESULTS/summary.txt" || true
  rm -f "$RESULTS/bench.txt"
fi
[[ $DRY -eq 1 ]] || { log "results in $RESULTS"; cat "$RESULTS/summary.txt"; }
exit "$status"
