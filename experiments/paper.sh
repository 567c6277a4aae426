#!/usr/bin/env bash
# The paper's setting (Lample et al. 2017, Sections 4-5) as one DVC
# experiment: CelebA at 256 px, the paper's 7-layer shape (C16 ... C512, a 2x2 latent),
# lambda_E rising to 1e-4 over 500,000 steps, batch 32, Adam(2e-4, beta1 0.5), epochs of 50,000
# images. Runs unchanged on a GPU (train_fader.device: auto picks CUDA); docs/experiments.md
# gives its time and memory. CelebA is downloaded with its md5 sums, or set CELEBA_DIR to a
# local copy.
#
#   bash experiments/paper.sh            # queue it (dvc queue start runs it)
#   bash experiments/paper.sh --run      # run it now in the workspace
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1
mode=(--queue)
[[ "${1:-}" == "--run" ]] && mode=()
celeba_dir=null
[[ -n "${CELEBA_DIR:-}" ]] && celeba_dir=$(cd "$CELEBA_DIR" && pwd)  # queued runs need it absolute

dvc exp run "${mode[@]}" --name paper \
  -S data.source=celeba -S "data.celeba_dir=$celeba_dir" -S data.split=official \
  -S data.img_size=256 -S data.workers=8 \
  -S model.n_layers=7 -S model.init_fm=16 -S model.max_fm=512 -S model.dis_dropout=0.3 \
  -S train_classifier.max_fm=512 -S train_classifier.max_epochs=20 \
  -S train_fader.batch_size=32 -S train_fader.learning_rate=0.0002 \
  -S train_fader.lambda_max=0.0001 -S train_fader.lambda_schedule=500000 \
  -S train_fader.epoch_size=50000 -S train_fader.n_epochs=1000 \
  -S evaluate.fid_images=10000 -S evaluate.n_images=0 -S evaluate.batch_size=100
