#!/usr/bin/env bash
# Quick start: install, train a small PoseNet then Pose2Mesh on synthetic anny bodies,
# evaluate both, and run the demo on a sample 2D pose the project generates itself.
# About 15-20 minutes on a 2-core CPU; outputs go under experiment/quickstart_*/ and demo/result/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

# Small-but-real settings: a 1,229-vertex anny topology, a narrower lifter, a few epochs.
QUICK=(MODEL.topology notoes_collapse10pc MODEL.posenet_hidden 1024 SYNTHETIC.train_size 8000
       SYNTHETIC.test_size 1000 DATASET.workers 0)
POSENET_DIR=experiment/quickstart_posenet
MESH_DIR=experiment/quickstart_pose2mesh

python main/train.py --cfg asset/yaml/posenet_human36J_train_synthetic.yml --exp_dir "$POSENET_DIR" \
    "${QUICK[@]}" TRAIN.end_epoch 6 TRAIN.lr_step "[4]"
python main/train.py --cfg asset/yaml/pose2mesh_human36J_train_synthetic.yml --exp_dir "$MESH_DIR" \
    "${QUICK[@]}" TRAIN.end_epoch 6 TRAIN.lr_step "[5]" TRAIN.edge_loss_start 3 \
    MODEL.posenet_path "$POSENET_DIR/checkpoint/final.pth.tar"

python demo/make_sample_inputs.py --out_dir demo/sample_inputs
python demo/run.py --input_pose demo/sample_inputs/sample_human36.npy --joint_set human36 \
    --cfg asset/yaml/pose2mesh_human36J_test_synthetic.yml \
    --weights "$MESH_DIR/checkpoint/final.pth.tar" "${QUICK[@]}"

echo
echo "PoseNet metrics:   $POSENET_DIR/result/metrics.json"
cat "$POSENET_DIR/result/metrics.json"
echo
echo "Pose2Mesh metrics: $MESH_DIR/result/metrics.json"
cat "$MESH_DIR/result/metrics.json"
echo
echo "Demo outputs: demo/result/"
