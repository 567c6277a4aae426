"""Evaluation: swap accuracy (`swaps`), PSNR/SSIM (`image_metrics`), FID (`fid`, `inception`,
which import pytorch-fid: only the modules that compute FID import them), and the evaluate
stage's protocol (`evaluate`)."""
