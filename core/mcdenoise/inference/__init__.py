"""Running a model on frames: building its input (``encode``), tiles (``tiling``), how it runs
on this machine (``runtime``) and glibc's heap for it (``allocator``), one frame (``denoise``)
and one file (``frames``)."""
