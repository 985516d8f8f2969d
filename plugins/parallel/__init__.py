"""Built-in parallel plugin."""
