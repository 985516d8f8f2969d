"""``Linear``: ``nn.Linear`` whose bf16/fp16 matmuls stay fast on CPUs without native ones.

Why. On an x86 CPU without AVX-512 (e.g. AMD EPYC Rome/Milan, most laptops) oneDNN has no bf16
GEMM, and PyTorch's CPU bf16 ``mm`` falls back to a scalar reference kernel whose speed depends
on the operands' memory layout: measured on such a host (1 thread, 1024 rows), a 384→16384 LM
head costs 1.8 s forward and 12.7 s for the input gradient, against 0.03–0.4 s for the same
matmuls in fp32 (pytorch/pytorch#146508 reports the same cliff). Every ``nn.Linear`` under
``torch.autocast("cpu", dtype=torch.bfloat16)`` pays it — on those CPUs bf16 training ran ~6×
slower than fp32. fp16 has the same fallback (~25× slower than fp32 here).

What. When the compute dtype is bf16 or fp16, the tensors are on the CPU, and oneDNN reports no
support for that dtype, this layer keeps the low-precision *semantics* — operands rounded exactly
as autocast rounds them, products accumulated in fp32, the output (and every gradient) rounded to
the compute dtype — but runs the three matmuls (forward, input gradient, weight gradient) through
the fp32 SGEMM, the way a native bf16/fp16 GEMM accumulates. Results equal the stock kernel's up
to summation order (tested against an fp64 reference). Everywhere else (GPU, AVX-512/AMX CPUs,
fp32, DTensor weights under tensor parallel) it is plain ``nn.Linear``; parameters, state-dict
keys and ``isinstance`` checks are unchanged.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.distributed.tensor import DTensor

_routing = {"enabled": True}


def _native_cpu_gemm() -> dict[torch.dtype, bool]:
    mkldnn = torch.backends.mkldnn.is_available()
    return {
        torch.bfloat16: mkldnn and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        torch.float16: mkldnn and bool(torch.ops.mkldnn._is_mkldnn_fp16_supported()),
    }


# Probed once at import: a plain dict lookup is a constant to torch.compile (a cached probe is not).
_NATIVE_CPU_GEMM = _native_cpu_gemm()


def cpu_has_native_gemm(dtype: torch.dtype) -> bool:
    """Whether PyTorch's CPU matmul in ``dtype`` (bf16 or fp16) runs on oneDNN on this host."""
    return _NATIVE_CPU_GEMM[dtype]


@contextlib.contextmanager
def stock_cpu_gemm():
    """Within this block every :class:`Linear` uses PyTorch's own bf16/fp16 kernel (A/B comparisons)."""
    previous = _routing["enabled"]
    _routing["enabled"] = False
    try:
        yield
    finally:
        _routing["enabled"] = previous


class _Fp32AccumulateLinear(torch.autograd.Function):
    """``x @ wᵀ + b`` for bf16/fp16 ``x [N, in]``, ``w``, ``b``: fp32 SGEMMs, results and grads in
    the inputs' dtype."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        with torch.autocast("cpu", enabled=False):  # autocast would send the fp32 mm back to bf16
            out = x.float() @ weight.float().t()
            if bias is not None:
                out += bias.float()
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        with torch.autocast("cpu", enabled=False):
            g = grad.float()
            if ctx.needs_input_grad[0]:
                grad_x = (g @ weight.float()).to(x.dtype)
            if ctx.needs_input_grad[1]:
                grad_w = (g.t() @ x.float()).to(weight.dtype)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = g.sum(0).to(x.dtype)
        return grad_x, grad_w, grad_b


class Linear(nn.Linear):
    """``nn.Linear``; see the module docstring for the CPU bf16/fp16 route."""

    residual_projection: bool = False
    """A projection into the residual stream (``o_proj``, ``down_proj``): initialised with the
    smaller std of the models' ``_init_weights``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self._fp32_route(x)
        if dtype is None:
            return super().forward(x)
        bias = self.bias.to(dtype) if self.bias is not None else None
        out = _Fp32AccumulateLinear.apply(x.reshape(-1, x.size(-1)).to(dtype), self.weight.to(dtype), bias)
        return out.view(*x.shape[:-1], self.out_features)

    def _fp32_route(self, x: torch.Tensor) -> torch.dtype | None:
        """The compute dtype when this call takes the fp32-SGEMM route, else None."""
        if x.device.type != "cpu" or not _routing["enabled"]:
            return None
        compute: torch.dtype | None
        if torch.is_autocast_enabled("cpu"):
            compute = torch.get_autocast_dtype("cpu")
        else:
            compute = x.dtype if x.dtype == self.weight.dtype else None
        if (
            compute not in (torch.bfloat16, torch.float16)
            or isinstance(self.weight, DTensor)
            or cpu_has_native_gemm(compute)
        ):
            return None
        return compute
