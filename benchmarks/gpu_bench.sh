#!/usr/bin/env bash
# `gen bench` at full size (IF-I-XL's UNet, random weights, fp16) on a CUDA machine; needs no network.
# Usage: OUT=results-folder benchmarks/gpu_bench.sh   (wheels the machine lacks, e.g. diffusers, in WHEELS=.whl)
set -euo pipefail
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
wheels="${WHEELS:-.whl}"
if compgen -G "$wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gen-site "$wheels"/*.whl
  export PYTHONPATH="/tmp/gen-site${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m generator.cli bench --size full --device cuda --repeats 10 | tee ${OUT:+"$OUT/bench_full.json"}
