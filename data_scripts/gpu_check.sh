#!/usr/bin/env bash
# One-shot check of GFD-Net on a CUDA machine (no internet needed); about 5-10 minutes on one H100 (an estimate, not timed).
#
#   bash data_scripts/gpu_check.sh            # from the repository root; results in $OUT or /tmp/gfd_gpu_check
#
# 1. installs the package (quietly; a failure is tolerated: PYTHONPATH is set as a fallback),
# 2. runs the unit tests that touch the trainer, the networks and the CUDA path,
# 3. a synthetic dataset, and python -m gfd speed --data at the course, gpu and paper presets (50 timed
#    steps each; data loading timed on that dataset, so no benchmark is built here),
# 4. short AMP + channels_last training runs on it: the quick preset (then `evaluate` and
#    `attribute` on its checkpoint), the quick preset with compile=true, the paper preset.
# Each stage has its own time limit; a failing stage is reported and the next one still runs.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gfd_gpu_check}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=PASSIVE
status=0
stage() { echo; echo "=== $1 ($(date +%T))"; }
fail() { echo "!!! stage failed: $1"; status=1; }

stage "install"
timeout 120 pip install -q --no-deps --no-build-isolation -e . >"$OUT/pip.log" 2>&1 \
    || echo "pip install -e . failed (see $OUT/pip.log); using PYTHONPATH=$PWD"
python - <<'EOF' || { echo "torch with CUDA is required"; exit 1; }
import torch, torchvision
print("torch", torch.__version__, "torchvision", torchvision.__version__)
assert torch.cuda.is_available(), "no CUDA device visible"
print("device", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
EOF

stage "unit tests (networks, losses, trainer incl. the CUDA test)"
timeout 240 python -m pytest -q -o addopts="" -p no:cacheprovider \
    tests/test_losses.py tests/test_models.py tests/test_train.py tests/test_issue16.py 2>&1 | tail -15 \
    || fail "unit tests"

stage "synthetic dataset"
DS="$OUT/synthetic"
python - "$DS" <<'EOF' || fail "synthetic dataset"
import sys, numpy as np
from pathlib import Path
from PIL import Image
root = Path(sys.argv[1]); rng = np.random.default_rng(0)
for split, n in (("train", 48), ("val", 8), ("test_closed", 8), ("test_open", 8)):
    for k, c in enumerate(("real", "ganA", "ganB")):
        d = root / split / c; d.mkdir(parents=True, exist_ok=True)
        for i in range(n):  # classes differ by a periodic pattern, so they are learnable
            img = rng.integers(0, 200, (64, 64, 3)).astype(np.float32)
            img[:, :: k + 2] += 40
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"{i:03d}.png")
print("dataset at", root)
EOF

stage "speed: course, gpu and paper presets, 50 steps; data loading from the synthetic dataset"
timeout 300 python -m gfd speed --data --preset course --preset gpu --preset paper --steps 50 --warmup 5 \
    --set data_root="$DS" --json "$OUT/speed.json" || fail "speed"

stage "train quick preset on CUDA (AMP + channels_last), evaluate, attribute"
timeout 150 python -W ignore -m gfd train --preset quick --no-progress --fresh --out "$OUT/quick" \
    --set data_root="$DS" --set steps=60 --set c_pretrain_steps=10 --set eval_every=20 \
    || fail "train quick"
timeout 60 python -m gfd evaluate --checkpoint "$OUT/quick/checkpoint.pt" --no-progress || fail "evaluate"
timeout 60 python -m gfd attribute "$DS"/test_closed/ganA/000.png "$DS"/test_closed/real/000.png \
    --checkpoint "$OUT/quick/checkpoint.pt" || fail "attribute"

stage "train quick preset with compile=true (torch.compile) for 20 steps"
timeout 240 python -W ignore -m gfd train --preset quick --no-progress --fresh --out "$OUT/compiled" \
    --set data_root="$DS" --set steps=20 --set c_pretrain_steps=5 --set eval_every=10 --set compile=true \
    || fail "train quick compiled"

stage "train paper preset (224 px, ResNet-50, weights auto) for 20 steps"
timeout 200 python -W ignore -m gfd train --preset paper --no-progress --fresh --out "$OUT/paper" \
    --set data_root="$DS" --set steps=20 --set c_pretrain_steps=5 --set eval_every=10 \
    --set classifier_weights=auto --set perceptual_weights=auto || fail "train paper"

echo
echo "=== done ($(date +%T)); status $status; results in $OUT"
exit $status
