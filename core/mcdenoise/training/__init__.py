"""Training of the project's networks: data sampling (``data``), loss (``losses``), checkpoints
with exact resume (``checkpoint``), the typed run configuration (``config``) and the loop itself
(``loop``). Everything here runs without Blender; datasets come from ``mcdenoise render-dataset``."""
