"""mcdenoise: a learned denoiser for Monte-Carlo renders."""

__version__ = "0.1.0"
