#!/usr/bin/env bash
# The GPU half of the recipe, for a lent CUDA machine that has python3 and torch but cannot
# reach the network and has no install of this project. It runs the package from core/ as is;
# wheels it lacks (openexr) come in .whl/, the training data as packs made by
# tools/pack_dataset.py in .pack/*/ (each upload is size-bounded, so the data may come in
# several calls: every pack seen is merged into $DATA, which outlives a call on a warm machine).
#
#   tools/gpu_session.sh bench OUT                    # GPU speed bench + a 40 s training probe per model
#   tools/gpu_session.sh train OUT MIN UNET FAST DNCNN  # train the three shipped models at once, MIN
#                                                      # minutes each, UNET/FAST/DNCNN steps (cosine
#                                                      # schedules sized from the probe's step rates)
#
# The three trainings share the GPU concurrently: each is small enough that one alone leaves
# most of the GPU idle while Python prepares batches. Outputs (weights, logs, reports) go to OUT.
set -u
cd "$(dirname "$0")/.."
MODE=$1 OUT=$2
DATA=${DATA:-/tmp/mcdenoise_data}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu PY=.venv/bin/python rehearses the script on a CPU machine
mkdir -p "$OUT" "$DATA"
export PYTHONPATH="$PWD/core:/tmp/site" PYTHONUNBUFFERED=1
if ! "$PY" -c "import OpenEXR" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
for pack in .pack/*/; do
    [ -d "$pack" ] && cp -rn "$pack"scene_* "$DATA"/ 2>/dev/null
done
echo "data: $(ls -d "$DATA"/scene_* 2>/dev/null | wc -l) scenes; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null)"
"$PY" -c "import torch, numpy, OpenEXR; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())" || exit 1

COMMON=(--data "$DATA" --device "$DEVICE" --quiet --val-every 0 --warmup 200 --batch 32 --workers 5 --threads 2 --checkpoint-minutes 2)
UNET=(--arch unet --quality balanced --crop 128 --lr 1e-3 --init core/mcdenoise/weights/default.pt)
FAST=(--arch unet --quality fast --crop 128 --lr 2e-3)
DNCNN=(--arch dncnn --crop 96 --lr 1e-3 --init core/mcdenoise/weights/dncnn.pt)

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
bench)
    "$PY" -m mcdenoise bench --speed --device "$DEVICE" --sizes "${SIZES:-1080p,4k}" --quality fast,balanced,high \
        --oidn-quality "" --gpu-precision fp16,bf16 --rounds 2 --out "$OUT" 2>&1 | tail -n 30
    for m in unet fast dncnn; do
        declare -n args=${m^^}
        "$PY" -m mcdenoise train "${COMMON[@]}" "${args[@]}" --out /tmp/probe_$m --steps 100000 --minutes "${PROBE_MIN:-0.7}" --log-every 10 \
            >"$OUT/probe_$m.log" 2>&1 &
    done
    wait
    for m in unet fast dncnn; do tail -n 2 "$OUT/probe_$m.log"; rate /tmp/probe_$m/log/train.jsonl $m; rm -rf /tmp/probe_$m; done
    ;;
train)
    MIN=$3
    declare -A STEPS=([unet]=$4 [fast]=$5 [dncnn]=$6)
    for m in unet fast dncnn; do
        declare -n args=${m^^}
        "$PY" -m mcdenoise train "${COMMON[@]}" "${args[@]}" --out "/tmp/run_$m" --steps "${STEPS[$m]}" \
            --minutes "$MIN" --export "$OUT/$m.pt" >"$OUT/train_$m.log" 2>&1 &
    done
    wait
    for m in unet fast dncnn; do
        tail -n 2 "$OUT/train_$m.log"; rate "/tmp/run_$m/log/train.jsonl" $m
        cat "/tmp/run_$m/log/train.jsonl" >>"$OUT/train_$m.log"
    done
    ;;
*) echo "usage: $0 bench|train OUT ..." >&2; exit 2 ;;
esac
