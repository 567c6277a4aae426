#!/usr/bin/env bash
# Real faces on a CPU in about 30 minutes: ../shared/celeba-mini (5,000 aligned CelebA images at
# 89x109, all in the official train split, hence a random 80/10/10 split) at 64 px, with the
# default model and λ_E up to 0.01: real faces need a stronger adversary than the synthetic
# default's 0.002 (glasses swapped 64 % vs 48 %). docs/real-faces.md reports what it reached.
#
#   bash experiments/celeba_mini.sh          # queue it (dvc queue start runs it)
#   bash experiments/celeba_mini.sh --run    # run it now in the workspace
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1
mode=(--queue)
[[ "${1:-}" == "--run" ]] && mode=()
celeba_dir=$(cd "${CELEBA_DIR:-../shared/celeba-mini}" && pwd)  # queued runs need it absolute

dvc exp run "${mode[@]}" --name celeba-mini \
  -S data.source=celeba -S "data.celeba_dir=$celeba_dir" -S data.split=random \
  -S data.img_size=64 \
  -S train_classifier.max_epochs=10 -S train_classifier.patience=3 \
  -S train_fader.epoch_size=16000 -S train_fader.n_epochs=10 -S train_fader.lambda_max=0.01 \
  -S render.multi_swaps='[{Male: 1, Smiling: 1}, {Male: 0, Eyeglasses: 1}]'
