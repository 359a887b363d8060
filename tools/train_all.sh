#!/usr/bin/env bash
# Train the render U-Net, then DnCNN on the same data, in the background and resumably.
#
#   tools/train_all.sh                 # starts itself under nohup, logs to runs/train_all.log
#   UNET_MIN=34 DNCNN_MIN=10 tools/train_all.sh
#
# Each stage is a plain `mcdenoise train` call on its own run folder, so re-running this script
# resumes both from their newest checkpoints (the dataset is re-scanned on resume and every few
# minutes, so scenes the renderer finished meanwhile are used). Budgets are wall-clock minutes of
# this call; the step counts only set the length of each LR schedule. The numbers below are
# sized for a shared 2-core CPU (about 4 s per U-Net step of 4 crops of 128 px and 4.5 s per DnCNN step of 4 crops of 96 px there).
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
UNET_MIN="${UNET_MIN:-25}"
DNCNN_MIN="${DNCNN_MIN:-10}"

echo "[$(date -Is)] unet: ${UNET_MIN} min"
"$MC" train --data "$DATA" --run-dir runs/unet --arch unet --widths balanced --steps 360 --batch 4 --crop 128 \
    --lr 2e-3 --warmup 50 --val-every 200 --threads 2 --minutes "$UNET_MIN" --no-progress \
    --export runs/unet/unet.pt
echo "[$(date -Is)] dncnn: ${DNCNN_MIN} min"
"$MC" train --data "$DATA" --run-dir runs/dncnn --arch dncnn --steps 130 --batch 4 --crop 96 \
    --lr 1e-3 --warmup 20 --val-every 0 --threads 2 --minutes "$DNCNN_MIN" --no-progress \
    --export runs/dncnn/dncnn.pt
echo "[$(date -Is)] done"
