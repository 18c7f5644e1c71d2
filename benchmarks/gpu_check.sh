#!/usr/bin/env bash
# One prepared run for a GPU machine (the `device` tool runs it from the repository root):
# the CUDA tests, then the embedding benchmark with its per-stage breakdown, the first run of
# the process (it starts the decoding workers) and the device preprocessing alone (matrix
# form and PyTorch's resampling kernel) under each row. Under 6 minutes
# on one H200. That machine has torch but not the project's other wheels and no network:
# put them in .whl/ first (pip download -d .whl open_clip_torch ftfy wcwidth --no-deps) and
# carry .whl. The measures' C kernel is built in place when a compiler is there.
set -euo pipefail
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONUNBUFFERED=1
python3 setup.py -q build_ext --inplace 2> /dev/null || echo "measures kernel not built: NumPy path"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m pytest -q -p no:cacheprovider tests/workers/ml/test_cuda.py \
    tests/workers/ml/test_device_preprocess.py tests/workers/ml/test_pool.py
python3 benchmarks/embed.py --device cuda --dtype bf16 --n 65536 --batch-size 512 \
    --workers 15 --preprocess both --image-size 64 --models ViT-B-32,tiny --repeats 1 --decoders
