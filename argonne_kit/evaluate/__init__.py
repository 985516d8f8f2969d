"""``argonne-kit eval``: perplexity, NLL by position, the quality probe and lm-eval tasks on any model."""
