#!/usr/bin/env bash
# Everything a CUDA GPU is needed for, in order, within 12 minutes of one H100 or H200:
#  1. Part B on the full profile from an empty cache, timed; its trainings' model FLOPs and
#     utilisation; `gen bench --part b` (ours and each fast path against the plain eager fp32 loop);
#  2. `gen bench --part if --size full`: IF-I-XL's stage I, ours against IFPipeline;
#  3. DeepFloyd at its real sizes: random weights of IF-I-XL, IF-II-L and a T5-v1.1-XXL-sized
#     encoder saved as the hub's repositories are, then `gen build a --backend deepfloyd` with the
#     folders as model ids, under each offload mode, and `auto` held to 16 GiB of the GPU;
#  4. while time is left, the full profile's site (Part A on the local backend, Part B), its docs/
#     brought back as a tarball.
# Each step appends one JSON line to $OUT/results.jsonl as soon as it ends and copies its figures
# under $OUT, so a run cut short keeps what it made. A failed or timed-out step is recorded and
# the next one runs.
#
# Usage: OUT=folder benchmarks/gpu_all.sh [--dry]
#   --dry: the same steps on the CPU at tiny sizes (smoke profile, tiny IF of the same layout), to
#   catch a mistake before the one GPU run. MNIST must be under GEN_DATA_DIR; nothing is
#   downloaded. The project's own docs/ is never written: gen runs in a copy of its inputs.
set -uo pipefail

dry=0
case "${1:-}" in
  --dry) dry=1 ;;
  "") ;;
  *) echo "usage: benchmarks/gpu_all.sh [--dry]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${OUT:-/tmp/gen-gpu-all}" && cd "${OUT:-/tmp/gen-gpu-all}" && pwd)"
work="${WORK:-$(mktemp -d /tmp/gen-gpu-all.XXXXXX)}"
[[ -n "${WORK:-}" ]] || trap 'rm -rf "$work"' EXIT  # the cache and the project copy
python="${PYTHON:-python3}"
# The whole run's seconds, and each step's limits × stretch: a dry run checks that every step
# runs, on a CPU that may be shared, not how fast.
if [[ "${1:-}" == --dry ]]; then budget="${BUDGET_S:-7200}" stretch=10; else budget="${BUDGET_S:-720}" stretch=1; fi
results="$out/results.jsonl"
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NO_MKDOCS_2_WARNING=1
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export GEN_CACHE_DIR="$work/cache"
started=$(date +%s)
failed=()

if ((dry)); then
  device=cpu
  profile=smoke
  # 10 sampling steps instead of 300: the dry run checks that every step runs, not the numbers
  b_sets=(--set b2.3.stride=30 --set b2.5.stride=30)
  bench_size=tiny
  bench_extra=(--repeats 1)
  scale=tiny
  a_sections=(a0 a1.5)
else
  device=cuda
  profile=full
  b_sets=()
  bench_size=full
  bench_extra=(--repeats 3)
  scale=full
  a_sections=(a)
fi

left() { echo $((budget - ($(date +%s) - started))); }

# One JSON object a line: {"step", "exit", "seconds", "timed_out"[, "result"]}. `result` is the
# step's stdout where that is one JSON value.
record() {
  local name=$1 code=$2 seconds=$3 file=$4
  "$python" - "$name" "$code" "$seconds" "$file" >>"$results" <<'EOF'
import json, sys
name, code, seconds, file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
line = {"step": name, "exit": code, "seconds": seconds, "timed_out": code in (124, 137)}
try:
    text = open(file).read()
except OSError:
    text = ""
for candidate in (text, *reversed(text.splitlines()[-1:])):  # all of it, else its last line
    try:
        line["result"] = json.loads(candidate)
        break
    except ValueError:
        pass
print(json.dumps(line))
EOF
}

# step NAME LIMIT_S COMMAND...: runs COMMAND in the project copy for at most LIMIT_S seconds (less
# where less of the budget is left), its stdout in $out/NAME.out, stderr in $out/NAME.log.
step() {
  local name=$1 limit=$(($2 * stretch))
  shift 2
  local remaining
  remaining=$(left)
  ((remaining < limit)) && limit=$remaining
  if ((limit < 10)); then
    echo "== $name: skipped, $(left) s of the budget left" | tee -a "$out/steps.txt"
    record "$name" 124 0 /dev/null
    failed+=("$name")
    return 124
  fi
  echo "== $name (at most $limit s)" | tee -a "$out/steps.txt"
  local t0=$(date +%s) code=0
  (cd "$work/project" && timeout --kill-after=10 "$limit" "$@") >"$out/$name.out" 2>"$out/$name.log" || code=$?
  local seconds=$(($(date +%s) - t0))
  record "$name" "$code" "$seconds" "$out/$name.out"
  echo "   exit $code after $seconds s" | tee -a "$out/steps.txt"
  ((code != 0)) && failed+=("$name")
  ((code != 0)) && tail -n 5 "$out/$name.log" | sed 's/^/   | /'
  return "$code"
}

# The figures and records a build left in the project copy's docs/ for part $1, under $out/$2.
keep() {
  mkdir -p "$out/$2"
  (cd "$work/project/docs/assets" && find . -path "./$1*" \( -name '*.webp' -o -name '*.gif' -o -name 'record.json' \) -print0 |
    xargs -0 -r cp --parents -t "$out/$2")
}

gen=("$python" -m generator.cli)
steps=("$python" "$repo/benchmarks/gpu_steps.py")

# ---------------------------------------------------------------- the project copy, the machine

mkdir -p "$work/project/generator"
cp -r "$repo/gen.yaml" "$repo/mkdocs.yml" "$repo/templates" "$repo/site_assets" "$work/project/"
cp "$repo/generator/site_hooks.py" "$work/project/generator/"
: >"$results"
"$python" - "$device" >>"$results" <<'EOF'
import json, platform, sys
import torch
cuda = sys.argv[1] == "cuda" and torch.cuda.is_available()
print(json.dumps({
    "step": "machine",
    "gpu": torch.cuda.get_device_name() if cuda else None,
    "gpu_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
    "cpu": platform.processor() or platform.machine(),
    "torch": torch.__version__,
    "dry": sys.argv[1] != "cuda",
}))
EOF
tail -n 1 "$results"
if ((!dry)) && ! "$python" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  echo "no CUDA GPU that torch sees; run with --dry on a CPU" >&2
  exit 2
fi

# ---------------------------------------------------------------- 1. Part B

step part_b_build 240 "${gen[@]}" build b --profile "$profile" --device "$device" "${b_sets[@]}"
keep b part_b
step part_b_records 30 "${steps[@]}" records . b
step part_b_flops 60 "${steps[@]}" part-b-flops . "$profile"
step bench_part_b 200 "${gen[@]}" bench --part b --size "$bench_size" --device "$device"

# ---------------------------------------------------------------- 2. IF stage I at full size

step bench_if 150 "${gen[@]}" bench --part if --size "$bench_size" --device "$device" "${bench_extra[@]}"

# ---------------------------------------------------------------- 3. DeepFloyd at its real sizes

weights="$work/if"
if step if_weights 150 "${steps[@]}" if-weights "$weights" --scale "$scale"; then
  ids=(--set "deepfloyd.stage_1=$weights/stage_1" --set "deepfloyd.stage_2=$weights/stage_2")
  a_build=(build --backend deepfloyd --profile smoke --device "$device" "${ids[@]}")
  # none first: every section of Part A, T5 run once (its embeddings are cached for the rest);
  # then a0 and a1.5 again under each other mode. Each run's peak GPU memory is in its result,
  # each section's time in the records after it.
  step if_offload_none 180 "${steps[@]}" gen -- "${a_build[@]}" "${a_sections[@]}" --set deepfloyd.offload=none
  step if_offload_none_records 30 "${steps[@]}" records . a
  keep a part_a_deepfloyd
  for mode in model sequential; do
    step "if_offload_$mode" 90 "${steps[@]}" gen -- "${a_build[@]}" a0 a1.5 --force --set "deepfloyd.offload=$mode"
    step "if_offload_${mode}_records" 30 "${steps[@]}" records . a
  done
  step if_offload_auto_16gib 90 "${steps[@]}" gen --gpu-gib 16 -- "${a_build[@]}" a0 a1.5 --force --set deepfloyd.offload=auto
  step if_offload_auto_16gib_records 30 "${steps[@]}" records . a
fi
rm -rf "$weights"  # tens of GB at full size

# ---------------------------------------------------------------- 4. the full profile's site

if step site 600 "${gen[@]}" build a b --profile "$profile" --backend local --device "$device" "${b_sets[@]}"; then
  step site_records 30 "${steps[@]}" records . a
  keep a site
  tar -czf "$out/docs.tar.gz" -C "$work/project" docs
fi

echo "== done in $(($(date +%s) - started)) s; results in $results"
if ((${#failed[@]})); then
  echo "failed or cut short: ${failed[*]}" >&2
  exit 1
fi
