"""Fine-tuning a shipped model on an artist's own shot (``mcdenoise finetune``): ``shot``
(a .blend read and rendered through bpy), ``pairs`` (existing renders matched by frame),
``budget`` (how the minutes are split), ``run`` (the job: render, train, check, write).

The add-on's entry point is :func:`mcdenoise.finetune.run.finetune_shot`."""
