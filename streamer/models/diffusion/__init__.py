"""The diffusion anonymizer's networks: model-folder info, loading, reference attention, I/O modules and specs."""
