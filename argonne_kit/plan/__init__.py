"""``argonne-kit plan``: what a recipe costs before it runs — parameters, per-GPU memory by
component, FLOPs per token and per step, time at a given MFU."""
