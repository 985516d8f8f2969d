"""The trainer, checkpoint manager, optimizer, metrics and the run entry point."""
