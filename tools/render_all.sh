#!/usr/bin/env bash
# Render the training and validation datasets in the background, resumably.
#
#   tools/render_all.sh            # starts itself under nohup, logs to data/render.log
#   TRAIN_SCENES=600 tools/render_all.sh   # a larger training set (default 400 scenes)
#
# Order: the first 40 training scenes (enough to start training), then the 10 validation
# scenes, then the rest of the training set. On a 2-core machine a scene takes about a minute,
# so the validation set comes early enough to benchmark against within one session. Each step is a plain `mcdenoise render-dataset`
# call, which skips finished scenes, so killing and re-running this script loses at most the
# scene in flight. Chunks of 25 scenes keep each Blender process short-lived.
set -u
REPO="$(cd "$(dirname "$0")/.." && pwd)"
LOG="$REPO/data/render.log"
mkdir -p "$REPO/data"
if [ "${1:-}" != "--foreground" ]; then
    nohup "$0" --foreground >>"$LOG" 2>&1 &
    echo "render_all: started PID $! (log: $LOG)"
    exit 0
fi

export BLENDER_USER_RESOURCES="${BLENDER_USER_RESOURCES:-$REPO/data/.blender-user}"
PY="$REPO/.venv/bin/python"
CHUNK=25

render() {  # render OUT START END [extra args...]: scene indices START..END-1 in chunks
    local out=$1 start=$2 end=$3; shift 3
    local s
    for ((s = start; s < end; s += CHUNK)); do
        local n=$((end - s < CHUNK ? end - s : CHUNK))
        echo "[$(date -Is)] $out scenes $s..$((s + n - 1))"
        local try
        for try in 1 2 3; do  # a crash is retried; a scene that always fails does not stall the rest
            "$PY" -m mcdenoise render-dataset --out "$out" --start "$s" --scenes "$n" --quiet "$@" && break
            echo "[$(date -Is)] render-dataset failed (rc=$?, try $try/3)"
            sleep 5
        done
    done
}

TRAIN=(--res 256 --spp 1,2,4,8,16 --ref-spp 128)
VAL=(--res 256 --spp 1,2,4,8,16 --ref-spp 512 --seed-offset 1000000)
echo "[$(date -Is)] render_all: PID $$ starting"
render "$REPO/data/train" 0 40 "${TRAIN[@]}"
render "$REPO/data/val" 0 10 "${VAL[@]}"
render "$REPO/data/train" 40 "${TRAIN_SCENES:-400}" "${TRAIN[@]}"
echo "[$(date -Is)] render_all: all done"
