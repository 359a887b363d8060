#!/usr/bin/env bash
# Train the shipped models one after another, in the background and resumably:
# the balanced U-Net (default.pt), the fast U-Net (fast.pt), then DnCNN on the same data.
#
#   tools/train_all.sh                          # starts itself under nohup, logs to runs/train_all.log
#   UNET_STEPS=28000 UNET_MIN=115 tools/train_all.sh
#
# Each stage is a plain `mcdenoise train` call on its own run folder, so re-running this script
# resumes every stage from its newest checkpoint, and a stage whose schedule is finished only
# re-exports. The *_STEPS values are the length of each cosine schedule: raising one on a
# finished run is a warm restart from its weights (how default.pt grew: 360, 560, 1500, 3500,
# 7000, then 28000 steps, see docs/model_card.md). The *_MIN values are wall-clock budgets of
# this call; size STEPS so the schedule ends inside the budget (on an idle 2-core CPU a
# balanced step of 4 crops of 128 px takes about 0.25 s, a fast step about 0.15 s, a DnCNN step
# of 4 crops of 96 px about 1 s), otherwise the run stops before its learning rate has decayed.
set -u
REPO="$(cd "$(dirname "$0")/.." && pwd)"
LOG="$REPO/runs/train_all.log"
mkdir -p "$REPO/runs"
if [ "${1:-}" != "--foreground" ]; then
    nohup "$0" --foreground >>"$LOG" 2>&1 &
    echo "train_all: started PID $! (log: $LOG)"
    exit 0
fi
cd "$REPO"
MC=".venv/bin/mcdenoise"
DATA="${DATA:-data/train}"
COMMON=(--data "$DATA" --batch 4 --warmup 50 --threads 2 --quiet)

echo "[$(date -Is)] unet balanced: ${UNET_STEPS:=28000} steps, ${UNET_MIN:=115} min"
"$MC" train "${COMMON[@]}" --out runs/unet --arch unet --quality balanced --steps "$UNET_STEPS" --crop 128 \
    --lr "${UNET_LR:-1e-3}" --val-every 2000 --minutes "$UNET_MIN" --export runs/unet/default.pt
echo "[$(date -Is)] unet fast: ${FAST_STEPS:=9000} steps, ${FAST_MIN:=27} min"
"$MC" train "${COMMON[@]}" --out runs/fast --arch unet --quality fast --steps "$FAST_STEPS" --crop 128 \
    --lr 2e-3 --val-every 0 --minutes "$FAST_MIN" --export runs/fast/fast.pt
echo "[$(date -Is)] dncnn: ${DNCNN_STEPS:=800} steps, ${DNCNN_MIN:=16} min"
"$MC" train "${COMMON[@]}" --out runs/dncnn --arch dncnn --steps "$DNCNN_STEPS" --crop 96 \
    --lr 1e-3 --val-every 0 --minutes "$DNCNN_MIN" --export runs/dncnn/dncnn.pt
echo "[$(date -Is)] done"
