#!/usr/bin/env bash
# Part B on the `full` profile (the write-up's numbers) on a CUDA machine, timed.
# Usage: OUT=results-folder benchmarks/gpu_part_b_full.sh   (MNIST under GEN_DATA_DIR)
set -euo pipefail
export GEN_CACHE_DIR="${GEN_CACHE_DIR:-/tmp/gen-full}" TQDM_DISABLE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
start=$(date +%s)
python3 -m generator.cli build b --profile full --device cuda
echo "wall seconds: $(( $(date +%s) - start ))"
tar -czf "$OUT/records.tar.gz" docs/assets/b*/record.json
cp docs/assets/b2.5/samples.npz "$OUT/b2.5_samples.npz"
cp docs/assets/b2.5/samples.webp "$OUT/b2.5_samples.webp"
