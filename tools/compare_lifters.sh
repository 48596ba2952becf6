#!/usr/bin/env bash
# Trains the lifters of the README's lifter comparison with the same data and budget: the
# embedded synthetic anny data (real CMU motion mixed with the pose prior, detector-like noisy
# 2D on every training input, no flip), 6 epochs x 20,000 samples, batch 64, Adam at 1e-3
# (x0.1 after epoch 5); HGN clips the gradient norm at 1 as its paper does. Rows: HGN (asset/yaml/HGN_human36J_train_synthetic.yml), HGN without
# its coarse-mesh constraint, PoseNet at the paper's 4,096 width and at the shipped 1,024.
# Every run resumes from its newest checkpoint when started again. One thread per run:
#   nohup bash tools/compare_lifters.sh hgn > experiment/compare_hgn.out 2>&1 &
#   (rows: hgn, hgn_no_mesh, posenet4096, posenet1024; no argument = all, one after another)
# Then (both test splits, GT and noisy 2D): python tools/evaluate_pretrained.py --joint_sets \
#   --out experiment/lifters/metrics.json --extra hgn=experiment/lifters/hgn/checkpoint/final.pth.tar ...
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# The data and budget of HGN_human36J_train_synthetic.yml, spelled out for the PoseNet rows.
SAME=(DATASET.workers 0 DATASET.use_gt_input False SYNTHETIC.noise_2d gaussian SYNTHETIC.pose_source mix
      SYNTHETIC.train_size 20000 SYNTHETIC.test_size 1000 MODEL.topology notoes_collapse10pc
      TRAIN.batch_size 64 TRAIN.end_epoch 6 TRAIN.lr 0.001 TRAIN.lr_step "[5]" TRAIN.optimizer adam AUG.flip False)

run() {  # experiment name, config, overrides...
    local dir=experiment/lifters/$1 cfg=$2
    shift 2
    local resume=()
    if compgen -G "$dir/checkpoint/*.pth.tar" > /dev/null; then
        resume=(--resume_training)
    fi
    python main/train.py --cfg "$cfg" --exp_dir "$dir" "${resume[@]}" "$@"
}

row() {
    case $1 in
        hgn) run hgn asset/yaml/HGN_human36J_train_synthetic.yml ;;
        hgn_no_mesh) run hgn_no_mesh asset/yaml/HGN_human36J_train_synthetic.yml MODEL.coarse_mesh_loss_weight 0.0 ;;
        posenet4096) run posenet4096 asset/yaml/posenet_human36J_train_synthetic.yml "${SAME[@]}" ;;
        posenet1024) run posenet1024 asset/yaml/posenet_human36J_train_synthetic.yml "${SAME[@]}" MODEL.posenet_hidden 1024 MODEL.posenet_dropout 0.1 ;;
        *) echo "unknown row '$1' (hgn, hgn_no_mesh, posenet4096, posenet1024)" >&2; exit 2 ;;
    esac
}

if [ $# -eq 0 ]; then set -- hgn hgn_no_mesh posenet4096 posenet1024; fi
for name in "$@"; do row "$name"; done
