"""Benchmarks: ``quality`` (PSNR/SSIM/relMSE per sample count) and ``speed`` (ms per megapixel),
each against pyoidn in the same run."""
