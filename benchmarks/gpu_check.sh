#!/usr/bin/env bash
# One prepared GPU check for a session that is lent a device (see the `device` tool's README):
# run it there with `carry: [".device_wheels"]`, e.g.
#
#     make device-wheels          # here, once: captum's wheel (the device image lacks it)
#     run(command="bash benchmarks/gpu_check.sh", carry=[".device_wheels"], timeout_s=540)
#
# It installs this project next to the image's own torch (no dependency resolution: nothing
# can be downloaded there), runs the CUDA-marked tests, then a short benchmark subset, and
# writes every log and figure under $OUT (at most 8 files come back).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  $PY -m pip install --quiet --no-deps --no-index .device_wheels/*.whl
} > "$OUT/setup.log" 2>&1 || { echo "setup failed"; tail -20 "$OUT/setup.log"; exit 1; }
# The image's setuptools may predate the SPDX license field: fall back to the source tree.
$PY -m pip install --quiet --no-deps --no-build-isolation -e . >> "$OUT/setup.log" 2>&1 \
  || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# 1. CUDA tests (marked `cuda`; they skip on CPU machines).
timeout 240 $PY -m pytest -q -p no:cacheprovider -m cuda tests > "$OUT/cuda_tests.log" 2>&1
echo "cuda tests: exit $?"; tail -3 "$OUT/cuda_tests.log"

# 2. Forward rows per second of the FL-I2MoE layer at the docs/scaling.md size, and larger.
{
  $PY benchmarks/scaling_rows.py --device cuda --rows 4096 --repeats 10
  $PY benchmarks/scaling_rows.py --device cuda --rows 16384 --repeats 5
} > "$OUT/scaling_rows.jsonl" 2>&1
cat "$OUT/scaling_rows.jsonl"

# 3. The FL-I2MoE training step, vectorised vs the sequential reference (issue 13, item 5).
{
  $PY benchmarks/train_step.py --device cuda
  $PY benchmarks/train_step.py --device cuda --batch 64 --tokens 64 --hidden 256
} > "$OUT/train_step.log" 2>&1
tail -8 "$OUT/train_step.log"

# 4. SII end to end on the GPU: 4 examples x 113 players, 2,048 rows each.
$PY - > "$OUT/sii_gpu.log" 2>&1 <<'PYEOF'
import time, torch
from captum_interactions import ShapleyInteractionIndex
from fl_i2moe_layer import FLI2MoE
layer = FLI2MoE(2, hidden_dim=256, num_classes=23, task="multilabel").eval().cuda()
text, image = torch.randn(4, 64, 256, device="cuda"), torch.randn(4, 49, 256, device="cuda")
forward = lambda t, i: layer([t, i]).logits
sii = ShapleyInteractionIndex(forward)
sii.attribute((text, image), target=0, n_samples=512, perturbations_per_eval=512)  # warm-up
torch.cuda.synchronize(); start = time.perf_counter()
values, stderr = sii.attribute((text, image), target=0, n_samples=2048,
                               perturbations_per_eval=2048, return_stderr=True)
torch.cuda.synchronize(); seconds = time.perf_counter() - start
print(f"SII 4 x 113 players x 2048 rows: {seconds:.2f} s, {4 * 2048 / seconds:.0f} rows/s, "
      f"mean stderr {float(stderr[:, :64, 64:].mean()):.3g}")
PYEOF
cat "$OUT/sii_gpu.log"
