"""GPUs the planner knows: memory as the driver reports it and dense peak FLOP/s."""

from __future__ import annotations

import attrs


@attrs.frozen
class GPU:
    """One accelerator model."""

    name: str
    memory_bytes: int
    """Total device memory as ``nvidia-smi`` reports it."""
    peak_bf16: float
    """Dense bf16/fp16 tensor-core FLOP/s (no sparsity)."""
    peak_tf32: float
    """Dense TF32 FLOP/s (fp32 training; the run enables TF32 matmuls on CUDA)."""

    def peak(self, precision: str) -> float:
        return self.peak_tf32 if precision == "fp32" else self.peak_bf16


MIB = 2**20

GPUS = {
    "a100-80": GPU("A100 80GB SXM", 81_920 * MIB, 312e12, 156e12),
    "h100": GPU("H100 SXM", 81_559 * MIB, 989e12, 494.5e12),
    "h200": GPU("H200 SXM", 143_771 * MIB, 989e12, 494.5e12),
}

#: A step planned above this share of device memory is "tight": the CUDA context, the
#: allocator's fragmentation and communication buffers take the rest.
USABLE_FRACTION = 0.9
