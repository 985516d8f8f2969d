"""The Argonne model family (Hugging Face-native) and its recipe sections."""
