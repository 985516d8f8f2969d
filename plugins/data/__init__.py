"""Built-in data plugin."""
