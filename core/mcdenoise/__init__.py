"""mcdenoise: a learned denoiser for Monte-Carlo renders.

``mcdenoise.denoise`` (arrays) and ``mcdenoise.denoise_exr`` (files) are the Python API
(:mod:`mcdenoise.api`, docs/api.md). They are imported on first use, so ``import mcdenoise``
stays light: no torch until something is denoised.
"""

__version__ = "0.1.0"
__all__ = ["denoise", "denoise_exr"]


def __getattr__(name: str):
    if name in __all__:
        from mcdenoise import api

        return getattr(api, name)
    raise AttributeError(f"module 'mcdenoise' has no attribute {name!r}")
