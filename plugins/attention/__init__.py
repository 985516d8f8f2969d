"""Built-in attention plugin."""
