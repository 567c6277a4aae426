#!/usr/bin/env bash
# The paper's trade-off on real faces (Sec. 3: a large λ_E blurs, a small one barely swaps): the
# CelebA recipe (experiments/celeba.sh) at several λ_E, and at a few λ_E the official code's
# settings (its 64 px shape: the 2x2 latent at the recipe's width, learning rate 2e-4, λ_E reached
# over 2,000 steps, 4,000 iterations in fp32, none of the recipe's additions). One queued
# experiment per point; then
# `python experiments/tradeoff.py` writes metrics/tradeoff/*.json, which `dvc plots show` and the
# report draw as reconstruction MSE against the flip accuracy at α = 1.
#
#   CELEBA_DIR=/path bash experiments/celeba_tradeoff.sh [more dvc exp run args]
#   CELEBA_DIR=../shared/celeba-mini bash experiments/celeba_tradeoff.sh \
#     -S data.split=random -S 'data.attributes=[Male,Smiling]'      # a partial copy
#   dvc queue start -j 1     # one after another (2-core CPU); `dvc queue status` to follow
#   python experiments/tradeoff.py
#
# LAMBDAS / OFFICIAL_LAMBDAS (space-separated) replace the default points; an empty one skips its family.
set -euo pipefail
cd "$(dirname "$0")/.."
for lambda in ${LAMBDAS-0.001 0.002 0.005 0.01 0.02}; do
  EXP_NAME="celeba-tradeoff-recipe-$lambda" bash experiments/celeba.sh \
    -S "train_fader.lambda_max=$lambda" -S evaluate.fid_images=0 "$@"
done
for lambda in ${OFFICIAL_LAMBDAS-0.0001 0.001 0.005}; do
  EXP_NAME="celeba-tradeoff-official-$lambda" bash experiments/celeba.sh \
    -S "train_fader.lambda_max=$lambda" -S train_fader.learning_rate=0.0002 \
    -S train_fader.lambda_schedule=2000 -S model.n_layers=5 -S train_fader.swap_clf_weight=0 \
    -S train_fader.epoch_size=16000 -S train_fader.n_epochs=8 -S train_fader.lr_decay=0 \
    -S train_fader.selection=best_swap -S train_fader.precision=fp32 \
    -S evaluate.fid_images=0 "$@"
done
dvc queue status
