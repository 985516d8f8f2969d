"""What a release directory stores, as names the command line offers without importing torch."""

from __future__ import annotations

#: ``--dtype`` names of an export: the training precisions a release keeps (fp16 weights of a
#: bf16-trained model would overflow).
EXPORT_DTYPE_NAMES = ("fp32", "bf16")
#: Largest safetensors shard of an export unless ``--max-shard-size`` says otherwise.
DEFAULT_MAX_SHARD_SIZE = "5GB"
