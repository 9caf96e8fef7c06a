#!/usr/bin/env bash
# On a CUDA machine, no network needed:
#  1. `gen bench` at full size (IF-I-XL's UNet, random weights, fp16): ours against IFPipeline;
#  2. the DeepFloyd backend's CUDA paths on a tiny IF (tests/tiny_if.py): fp16 loading, each
#     offload mode and auto's choice, through `gen build` as users run it.
# Usage: OUT=results-folder benchmarks/gpu_bench.sh   (wheels the machine lacks, e.g. diffusers, in WHEELS=.whl)
set -euo pipefail
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 GEN_CACHE_DIR="${GEN_CACHE_DIR:-/tmp/gen-gpu}"
out="${OUT:-/tmp/gen-gpu-out}"
mkdir -p "$out"
wheels="${WHEELS:-.whl}"
if compgen -G "$wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gen-site "$wheels"/*.whl
  export PYTHONPATH="/tmp/gen-site${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -m generator.cli bench --size full --device cuda --repeats 10 | tee "$out/bench_full.json"

tiny=/tmp/gen-tiny-if
python3 tests/tiny_if.py "$tiny"
sets=(--set "deepfloyd.stage_1=$tiny/stage_1" --set "deepfloyd.stage_2=$tiny/stage_2")
for mode in auto none model sequential; do
  echo "== offload $mode"
  python3 -m generator.cli build a0 a1.5 a1.7.2 --backend deepfloyd --device cuda --profile smoke --force \
    "${sets[@]}" --set "deepfloyd.offload=$mode" 2>&1 | tail -n 4
  python3 -c 'import json; b = json.load(open("docs/assets/a1.5/record.json"))["backend"]; print(b["offload"], "|", b["offload_reason"], "|", b["model_id"])' | tee -a "$out/offload.txt"
done
python3 -m generator.cli list --backend auto "${sets[@]}" > "$out/list.txt" 2>&1
grep '^backend' "$out/list.txt"
