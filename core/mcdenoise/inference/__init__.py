"""Running a model on frames: building its input (``encode``), tiles (``tiling``), how it runs
on this machine (``runtime``), one frame (``denoise``) and one file (``frames``)."""
