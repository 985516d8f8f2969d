"""Built-in objectives plugin."""
