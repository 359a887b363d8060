"""Temporal denoising of animations: frames denoised one by one, then stabilised with the
previous output warped into place by Blender's Vector pass.

* :mod:`~mcdenoise.temporal.warp`: the Vector pass's convention, backward warping, validity;
* :mod:`~mcdenoise.temporal.stabilise`: the hand-made per-pixel blend;
* :mod:`~mcdenoise.temporal.blendnet`: the learned blend that replaces it when weights are
  shipped or given, and the one place that decides which blend runs (``choose_blend``);
* :mod:`~mcdenoise.temporal.cache` and :mod:`~mcdenoise.temporal.train`: training the learned
  blend (``mcdenoise train-temporal``) on the single-frame model's cached outputs;
* :mod:`~mcdenoise.temporal.history`: the frames kept, the exactly reproducible output, the
  batch runner's per-frame hook;
* :mod:`~mcdenoise.temporal.plan`: when the path applies, shards as blocks, warm-up frames.

Kept free of torch at import time: the CLI reads :data:`DEFAULT_WINDOW` while building its
options.
"""

# History frames each output uses, which is also how many frames a shard or a resumed run
# denoises before its first frame (``--temporal-warmup``).
DEFAULT_WINDOW = 4
