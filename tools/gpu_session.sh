#!/usr/bin/env bash
# The GPU half of the recipe, for a lent CUDA machine that has python3 and torch but cannot
# reach the network and has no install of this project. It runs the package from core/ as is;
# wheels it lacks (openexr) come in .whl/, the training data as packs made by
# tools/pack_dataset.py in .pack/*/ (each upload is size-bounded, so the data comes in several
# calls: every pack seen is merged into $DATA, which outlives a call on a warm machine).
#
#   tools/gpu_session.sh load                          # merge the uploaded pack(s) into $DATA, nothing else
#   tools/gpu_session.sh bench OUT                     # GPU speed bench + a 40 s training probe per model
#   tools/gpu_session.sh train OUT MIN BALANCED FAST HIGH WIDE
#                                                      # fine-tune the three shipped U-Nets at once, and
#                                                      # balanced grown into the wide decoder, MIN
#                                                      # minutes each, that many steps each (cosine
#                                                      # schedules sized from the probe's step rates)
#
# A session (docs/training.md, "On a GPU"): one pack in .pack/ per call (the tree travels with it),
# `bench` with the first, `load` with each further one, `train` with the last; calls back to back,
# since a machine idle for 30 s is given back with $DATA.
#
# The trainings share the GPU concurrently. Each keeps its data on the GPU (--resident: the scenes
# are uploaded once and crops are cut, encoded and augmented there), so the CPU does not limit the
# step rate. Outputs (weights, logs, reports) go to OUT. Cycles cannot render there: bpy
# (~375 MB) is larger than what a call may carry, so the data is rendered here and packed.
# BATCH, CROP and the INIT_* weights can be overridden (the test rehearses it at toy size on a CPU).
set -u
cd "$(dirname "$0")/.."
MODE=${1:-} OUT=${2:-}
DATA=${DATA:-/tmp/mcdenoise_data}
PACKS=${PACKS:-.pack}  # uploaded packs, one folder each
RUNS=${RUNS:-/tmp/mcdenoise_runs}  # run folders: re-running the same mode resumes them
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu PY=.venv/bin/python rehearses the script on a CPU machine
mkdir -p "$DATA" "$RUNS" ${OUT:+"$OUT"}
export PYTHONPATH="$PWD/core:/tmp/site" PYTHONUNBUFFERED=1
if ! "$PY" -c "import OpenEXR" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
for pack in "$PACKS"/*/; do
    [ -d "$pack" ] && cp -rn "$pack"scene_* "$DATA"/ 2>/dev/null
done
echo "data: $(ls -d "$DATA"/scene_* 2>/dev/null | wc -l) scenes; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null)"
"$PY" -c "import torch, numpy, OpenEXR; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())" || exit 1

BATCH=${BATCH:-32} CROP=${CROP:-128}
COMMON=(--data "$DATA" --device "$DEVICE" --quiet --val-every 0 --warmup 200 --batch "$BATCH" --resident --threads 2 --checkpoint-minutes 2)
# Each U-Net continues from its shipped file (unless INIT_* names another; "" = from scratch) with
# the shipped recipes' last stage: the sample count as an input, converging crops, the loss in
# display space (recipes/*.toml, stage "display").
LAST_STAGE=(--arch unet --inputs color+albedo+normal+samples --converged 0.25 --loss-space display --crop "$CROP")
BALANCED=("${LAST_STAGE[@]}" --quality balanced --lr 5e-4 --init "${INIT_BALANCED-core/mcdenoise/weights/default.pt}")
FAST=("${LAST_STAGE[@]}" --quality fast --lr 1e-3 --init "${INIT_FAST-core/mcdenoise/weights/fast.pt}")
HIGH=("${LAST_STAGE[@]}" --quality high --lr 5e-4 --init "${INIT_HIGH-core/mcdenoise/weights/high.pt}")
# The balanced U-Net grown into OIDN's kind of decoder (--decoder wide: the finest levels wider, the
# input read again there), starting from what default.pt computes: 15500 CPU steps of it gained 0.30 dB
# at 4 spp on five suite scenes, still rising slowly (recipes/wide.toml, CHANGELOG); a GPU's steps.
WIDE=("${LAST_STAGE[@]}" --quality balanced --decoder wide --lr 5e-4 --init "${INIT_WIDE-core/mcdenoise/weights/default.pt}")
MODELS=(balanced fast high wide)

rate() {  # steps per second of a run, from its log's last two records
    "$PY" -c "
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if 'train_s' in l]
if len(r) < 2:
    sys.exit(f'{sys.argv[2]}: too few log records for a rate ({len(r)})')
a, b = r[len(r) // 2], r[-1]
print(f\"{sys.argv[2]}: step {b['step']}, {(b['step'] - a['step']) / (b['train_s'] - a['train_s']):.2f} steps/s, loss {b['loss']:.4f}\")
" "$1" "$2"
}

case "$MODE" in
load) ;;  # the packs were merged above
bench)
    "$PY" -m mcdenoise bench --speed --device "$DEVICE" --sizes "${SIZES:-1080p,4k}" --quality fast,balanced,high \
        --oidn-quality "" --gpu-precision fp16,bf16 --rounds 2 --out "$OUT" 2>&1 | tail -n 30
    for m in "${MODELS[@]}"; do
        declare -n args=${m^^}
        "$PY" -m mcdenoise train "${COMMON[@]}" "${args[@]}" --out "$RUNS/probe_$m" --steps 100000 --minutes "${PROBE_MIN:-0.7}" --log-every 10 \
            >"$OUT/probe_$m.log" 2>&1 &
    done
    wait
    for m in "${MODELS[@]}"; do tail -n 2 "$OUT/probe_$m.log"; rate "$RUNS/probe_$m/log/train.jsonl" $m; rm -rf "$RUNS/probe_$m"; done
    ;;
train)
    [ $# -eq 7 ] || { echo "usage: $0 train OUT MIN BALANCED FAST HIGH WIDE (steps of each)" >&2; exit 2; }
    MIN=$3
    declare -A STEPS=([balanced]=$4 [fast]=$5 [high]=$6 [wide]=$7) pids=()
    for m in "${MODELS[@]}"; do
        declare -n args=${m^^}
        "$PY" -m mcdenoise train "${COMMON[@]}" "${args[@]}" --out "$RUNS/run_$m" --steps "${STEPS[$m]}" \
            --minutes "$MIN" --export "$OUT/$m.pt" >"$OUT/train_$m.log" 2>&1 &
        pids[$m]=$!
    done
    failed=0
    for m in "${MODELS[@]}"; do wait "${pids[$m]}" || { echo "$m: training failed (see $OUT/train_$m.log)"; failed=1; }; done
    for m in "${MODELS[@]}"; do
        tail -n 2 "$OUT/train_$m.log"; rate "$RUNS/run_$m/log/train.jsonl" $m
        cat "$RUNS/run_$m/log/train.jsonl" >>"$OUT/train_$m.log"
    done
    exit $failed
    ;;
*) echo "usage: $0 load | bench OUT | train OUT MIN BALANCED FAST HIGH WIDE" >&2; exit 2 ;;
esac
