#!/usr/bin/env bash
# Quick start: install, train a small PoseNet then Pose2Mesh on synthetic anny bodies,
# evaluate both, run the demo on a sample 2D pose the project generates itself, and score the
# shipped pretrained models (asset/pretrained/) on the real-motion test split.
# About 11-12 minutes on a 2-core CPU, plus 2-4 minutes of installation on a new machine.
# Outputs go under experiment/quickstart_*/ and demo/result/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

# Small-but-real settings: the 1,229-vertex anny topology, a 1024-wide lifter, fresh synthetic
# samples every epoch. PoseNet: 6 x 20,000 samples; Pose2Mesh: 6 x 2,400 samples at batch 32.
# Poses from the pose prior only: these minutes-long runs are the contrast to the shipped
# models, which train for hours on real motion capture mixed with the prior.
QUICK=(MODEL.topology notoes_collapse10pc MODEL.posenet_hidden 1024 SYNTHETIC.test_size 1000
       DATASET.workers 0 SYNTHETIC.pose_source prior)
POSENET_DIR=experiment/quickstart_posenet
MESH_DIR=experiment/quickstart_pose2mesh
if [ -e "$POSENET_DIR" ] || [ -e "$MESH_DIR" ]; then
    echo "quickstart: replacing the previous quick-start run in $POSENET_DIR and $MESH_DIR"
    rm -rf "$POSENET_DIR" "$MESH_DIR"
fi

python main/train.py --cfg asset/yaml/posenet_human36J_train_synthetic.yml --exp_dir "$POSENET_DIR" \
    "${QUICK[@]}" SYNTHETIC.train_size 20000 TRAIN.end_epoch 6 TRAIN.lr_step "[5]"
python main/train.py --cfg asset/yaml/pose2mesh_human36J_train_synthetic.yml --exp_dir "$MESH_DIR" \
    "${QUICK[@]}" SYNTHETIC.train_size 2400 TRAIN.batch_size 32 TRAIN.end_epoch 6 TRAIN.lr_step "[3]" \
    TRAIN.edge_loss_start 1 MODEL.posenet_path "$POSENET_DIR/checkpoint/final.pth.tar"

python demo/make_sample_inputs.py --out_dir demo/sample_inputs
python demo/run.py --input_pose demo/sample_inputs/sample_human36.npy --joint_set human36 \
    --cfg asset/yaml/pose2mesh_human36J_test_synthetic.yml \
    --weights "$MESH_DIR/checkpoint/final.pth.tar" "${QUICK[@]}"

# The shipped models on the real-motion test split (CMU subject 006, never trained on).
SHIPPED=()
for JOINTS in human36 coco; do
    DIR=experiment/quickstart_shipped_${JOINTS}J_real_motion
    rm -rf "$DIR"
    python main/test.py --cfg "asset/yaml/pose2mesh_${JOINTS}J_test_synthetic_pretrained.yml" \
        --exp_dir "$DIR" SYNTHETIC.test_split real_motion
    SHIPPED+=("$DIR/result/metrics.json")
done
python demo/run.py --input_pose demo/sample_inputs/real_motion_coco.json --joint_set coco \
    --output_dir demo/result/shipped_coco

echo
echo "Quick-start models, synthetic test split (mm), against the mean-pose baseline:"
python tools/print_metrics.py "$POSENET_DIR/result/metrics.json" "$MESH_DIR/result/metrics.json"
echo "Shipped pretrained models, real-motion test split, ground-truth 2D (mm):"
python tools/print_metrics.py "${SHIPPED[@]}"
echo "Demo outputs: demo/result/ (quick-start model), demo/result/shipped_coco/ (shipped coco model)"
