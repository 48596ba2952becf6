#!/usr/bin/env bash
# Trains the shipped models of asset/pretrained/ for one input joint set (human36 or coco):
# PoseNet, then Pose2Mesh on top of it, with the *_pretrained.yml configs. Every stage resumes
# from its newest checkpoint when run again (so a stopped run continues where it was, and a
# finished one whose config now asks for more epochs continues to the new TRAIN.end_epoch);
# a stage already at its end_epoch trains nothing. One thread per run by default, so that two joint sets can train
# side by side on a 2-core CPU:
#   nohup bash tools/train_pretrained.sh human36 > experiment/pretrained_human36.out 2>&1 &
#   nohup bash tools/train_pretrained.sh coco    > experiment/pretrained_coco.out 2>&1 &
# Then: python tools/export_pretrained.py (fp16 weights into asset/pretrained/).
set -euo pipefail
cd "$(dirname "$0")/.."
JOINTS=${1:?usage: tools/train_pretrained.sh human36|coco}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

run_stage() {  # config, experiment folder
    local cfg=$1 dir=$2
    local resume=()
    if compgen -G "$dir/checkpoint/*.pth.tar" > /dev/null; then
        resume=(--resume_training)
    fi
    python main/train.py --cfg "$cfg" --exp_dir "$dir" "${resume[@]}"
}

run_stage "asset/yaml/posenet_${JOINTS}J_train_synthetic_pretrained.yml" "experiment/posenet_${JOINTS}J_pretrained"
run_stage "asset/yaml/pose2mesh_${JOINTS}J_train_synthetic_pretrained.yml" "experiment/pose2mesh_${JOINTS}J_pretrained"
