#!/usr/bin/env bash
# The ablation report's study on the default data, as DVC experiments (see docs/experiments.md).
#
#   bash experiments/ablation.sh     # queue them (nothing runs yet)
#   dvc queue start -j 1             # run them one after another; `dvc queue status` to follow
#   (OMP_NUM_THREADS=1 dvc queue start -j 2 runs two at once, one thread each: faster on 2 cores)
#   dvc exp show --md --only-changed # compare; docs/experiments.md explains the ablation table
#
# The committed default (params.yaml, the workspace row of `dvc exp show`) is the baseline; each
# queued run changes one knob, so only train_fader, evaluate and render re-run (preprocessing and
# the classifier come from the cache).
# Layer counts are relative to the default's n_layers (5 at 64 px, a 2x2 latent); 8 layers needs
# 256 px, so at 64 px the study takes one fewer (4x4 latent) and one more (1x1 latent).
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1
queue() { dvc exp run --queue --name "$1" "${@:2}"; }

n_layers=$(python -c 'import yaml; print(yaml.safe_load(open("params.yaml"))["model"]["n_layers"])')
queue ablation-layers-minus1 -S model.n_layers=$((n_layers - 1))
queue ablation-layers-plus1 -S model.n_layers=$((n_layers + 1))
queue ablation-no-dropout -S model.dis_dropout=0.0
queue ablation-mae -S train_fader.recon_loss=mae
queue ablation-huber -S train_fader.recon_loss=huber
queue ablation-skip -S model.n_skip=2      # U-Net skips from the C16 and C32 maps, as in the report
queue ablation-patch -S train_fader.patch_weight=0.01
queue ablation-no-adversary -S train_fader.lambda_max=0   # the same network as a plain autoencoder
dvc queue status
