"""Denoising many frames unattended: inputs expanded to frames (``sequence``), outputs planned and
resumed (``plan``), and the overlapped read/denoise/write runner (``runner``)."""
