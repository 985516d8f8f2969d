"""One-GPU suite (≤ 8 minutes on an H100/H200): the Argonne 3.0 shape in bf16.

Prints, on one GPU:

1. step MFU with each attention backend: ``sdpa``, ``flash2``, ``flex`` (a backend that cannot run
   here is skipped with its reason; ``flex`` runs compiled, as flex attention needs);
2. FP8 vs bf16 speed-up: torchao's float8 training (``convert_to_float8_training`` on the block
   linears, compiled) vs the same compiled model in bf16; skipped with the reason when torchao or
   an FP8-capable GPU (compute capability ≥ 8.9) is missing;
3. chunked cross-entropy memory on the GPU: the allocator's peak of the loss step (LM head + CE,
   fwd+bwd, vocabulary 151,669) with full logits vs the kit's chunked CE for a plain head
   (``fused_lm_loss_sums``, what ``objective.loss_chunk_size`` runs) and the generic chunked path
   (``lm_loss_sums(chunk_size=…)``, kept for FP8 / DTensor / custom heads);
4. activation-checkpointing cost: step time and peak memory with ``activation_checkpointing`` on
   vs off at the same micro-batch;
5. tokens/s and MFU at the largest micro-batch that fits (doubling from ``--micro-batch`` with
   activation checkpointing on until the allocator runs out of memory or ``--max-micro-batch``).

A step is the kit's single-device strategy wrapping (``WrapOptions``), bf16 autocast over fp32
master weights, next-token CE on the full logits, backward, grad clip, fused AdamW, like
``gpu_mfu.py`` (whose FLOP count and peak table this reuses). Without CUDA it runs the same code
on tiny shapes as a CPU smoke (every line says so; the figures are not GPU figures), so CI keeps
the suite working.

    python benchmarks/gpu_suite.py [--micro-batch 8] [--seq-len 1024] [--steps 10] [--warmup 3]
        [--max-micro-batch 64]
    bash benchmarks/gpu_suite.sh   # the same, with the project's .venv when there is one
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from _common import host_line
from gpu_mfu import RECIPE, flops_per_token, peak_tflops

VOCAB = 151669
CPU_SHAPE = dict(
    vocab_size=512,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    qk_norm=True,
    v_norm=True,
    sandwich_norm=True,
    logit_softcap=15.0,
    interleaved_local_attention=False,
    tie_word_embeddings=True,
    max_position_embeddings=256,
)


def _peak(gib: float) -> str:
    """The allocator's peak, or what stands in for it without one (CPU)."""
    return "peak n/a on CPU" if math.isnan(gib) else f"peak {gib:.1f} GiB"


class Suite:
    """The device, the model config per backend, and the timing of training steps."""

    def __init__(self, args):
        self.args = args
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.seq = args.seq_len if self.cuda else 64
        self.tag = "" if self.cuda else "  [CPU smoke, not a GPU figure]"
        self.peak = peak_tflops(torch.cuda.get_device_name()) if self.cuda else None

    def config(self, backend: str):
        if self.cuda:
            from argonne_kit.model import build_config
            from argonne_kit.recipe.api import resolve_recipe

            resolved = resolve_recipe(RECIPE, [f"model.max_position_embeddings={max(self.seq, 1024)}"])
            return build_config(resolved.recipe.model, attn_backend=backend)
        from argonne_kit.model import ArgonneConfig

        return ArgonneConfig(**CPU_SHAPE, attn_backend=backend)

    def build(self, backend: str, *, compile: bool = False, activation_checkpointing: bool = False, fp8: bool = False):
        from argonne_kit.contracts.parallel import WrapOptions
        from argonne_kit.model import ArgonneForCausalLM
        from argonne_kit.registry import get_registry

        component = get_registry().get("parallel", "single")
        strategy = component.factory(component.config_cls())
        strategy.setup(self.device.type)
        torch.manual_seed(0)
        config = self.config(backend)
        with torch.device(self.device):
            model = ArgonneForCausalLM(config)
        if fp8:
            from torchao.float8 import convert_to_float8_training

            # the block linears; the tied LM head stays bf16 (its weight is the embedding table)
            convert_to_float8_training(model, module_filter_fn=lambda _m, name: "layers." in name)
        model = strategy.wrap(model, WrapOptions(activation_checkpointing=activation_checkpointing, compile=compile))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=self.cuda)
        return strategy, model, optimizer, config

    def time_steps(self, built, micro_batch: int) -> dict:
        """tokens/s, seconds/step and peak allocated GiB of ``--steps`` steps after ``--warmup``."""
        strategy, model, optimizer, config = built
        batch = torch.randint(0, config.vocab_size, (micro_batch, self.seq + 1), device=self.device)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16)

        def step():
            with autocast:
                logits = model(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.float().reshape(-1, config.vocab_size), batch[:, 1:].reshape(-1))
            loss.backward()
            strategy.clip_grad_norm(model, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.detach()

        steps, warmup = (self.args.steps, self.args.warmup) if self.cuda else (1, 1)
        for _ in range(warmup):
            step()
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        loss.item()
        self.sync()
        seconds = (time.perf_counter() - start) / steps
        return {
            "tokens_per_s": micro_batch * self.seq / seconds,
            "step_s": seconds,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if self.cuda else float("nan"),
            "config": config,
        }

    def mfu(self, result: dict) -> str:
        if not self.cuda:
            return "MFU n/a"
        if self.peak is None:
            return "MFU n/a (unknown peak)"
        per_token = flops_per_token(result["config"], self.seq)
        return f"MFU {100 * result['tokens_per_s'] * per_token / (self.peak * 1e12):.1f}%"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def free(self) -> None:
        import gc

        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def row(self, label: str, make: Callable[[], object], micro_batch: int) -> dict | None:
        """Build, time and print one row; a backend or feature this host lacks prints why and
        returns None."""
        from argonne_kit.contracts.attention import AttentionUnsupported

        try:
            built = make()
            result = self.time_steps(built, micro_batch)
        except (AttentionUnsupported, ImportError) as exc:
            print(f"  {label:<34} skipped: {str(exc).splitlines()[0]}{self.tag}", flush=True)
            return None
        finally:
            built = None
            self.free()
        print(
            f"  {label:<34} micro-batch {micro_batch:>3}: {result['tokens_per_s']:>10,.0f} tokens/s, "
            f"{result['step_s'] * 1e3:8.1f} ms/step, {self.mfu(result)}, {_peak(result['peak_gib'])}{self.tag}",
            flush=True,
        )
        return result


def fp8_unavailable(cuda: bool) -> str | None:
    """Why torchao float8 training cannot run here, or None."""
    if not cuda:
        return "float8 matmuls need a CUDA GPU with compute capability >= 8.9"
    if torch.cuda.get_device_capability() < (8, 9):
        return f"{torch.cuda.get_device_name()} has no FP8 tensor cores (compute capability < 8.9)"
    try:
        import torchao.float8  # noqa: F401
    except ImportError as exc:
        return f"torchao float8 not importable ({exc})"
    return None


def chunked_ce_memory(suite: Suite, rows: int, chunk: int) -> None:
    """Allocator peak of the loss step: full logits vs the kit's chunked CE (fused, generic)."""
    from argonne_kit.loss import fused_lm_loss_sums, lm_loss_sums, logit_loss_sums

    vocab, hidden = (VOCAB, 3072) if suite.cuda else (4096, 64)
    dtype = torch.bfloat16 if suite.cuda else torch.float32
    weight = (torch.randn(vocab, hidden, device=suite.device) * 0.02).to(dtype).requires_grad_()
    h = torch.randn(rows, hidden, device=suite.device, dtype=dtype).requires_grad_()
    targets = torch.randint(0, vocab, (rows,), device=suite.device)
    results = {}
    for name in ("full logits", "fused", "generic"):
        weight.grad = h.grad = None
        suite.free()
        suite.sync()
        base = torch.cuda.memory_allocated() if suite.cuda else 0
        if suite.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        if name == "full logits":
            nll, _z, count = logit_loss_sums(F.linear(h, weight), targets, False)
        elif name == "fused":
            nll, _parts, _z, count = fused_lm_loss_sums(h, weight, targets, chunk)  # z-loss off: loss = nll
        else:
            nll, _z, count = lm_loss_sums(h, lambda x: F.linear(x, weight), targets, chunk, False)
        (nll / count).backward()
        suite.sync()
        seconds = time.perf_counter() - start
        peak = (torch.cuda.max_memory_allocated() - base) / 2**30 if suite.cuda else float("nan")
        results[name] = (peak, seconds)
    full_mem, full_s = results["full logits"]
    for name in ("fused", "generic"):
        chunk_mem, chunk_s = results[name]
        memory = (
            f"peak {full_mem:.2f} vs {chunk_mem:.2f} GiB (ratio {chunk_mem / full_mem:.2f})"
            if suite.cuda
            else "memory n/a on CPU (no allocator peak; benchmarks/chunked_ce.py measures RSS)"
        )
        print(
            f"  chunked CE {name} ({chunk} rows), V={vocab:,} d={hidden} {rows} rows {str(dtype).split('.')[-1]}: "
            f"{memory}; time {full_s * 1e3:.1f} vs {chunk_s * 1e3:.1f} ms (ratio {chunk_s / full_s:.2f}){suite.tag}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--micro-batch", type=int, default=8, help="rows per step (default 8, as 3.0 trained)")
    parser.add_argument("--seq-len", type=int, default=1024, help="tokens per row on the GPU (default 1024)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per row (default 3)")
    parser.add_argument("--max-micro-batch", type=int, default=64, help="stop the micro-batch search here")
    parser.add_argument("--ce-chunk", type=int, default=1024, help="rows per chunk of the chunked CE row")
    args = parser.parse_args()
    suite = Suite(args)
    started = time.perf_counter()
    print(host_line())
    mb = args.micro_batch if suite.cuda else 2
    if suite.cuda:
        print(
            f"Argonne 3.0 shape, bf16 autocast, T={suite.seq}, "
            f"{flops_per_token(suite.config('sdpa'), suite.seq) / 1e9:.2f} GFLOP/token, peak "
            f"{suite.peak or 'unknown'} TFLOP/s"
        )
    else:
        print("no CUDA device: CPU smoke on a tiny model (d 64, 2 layers, T 64); NOT GPU figures")

    print("1. attention backends (bf16 step, eager unless said)")
    base = suite.row("sdpa", lambda: suite.build("sdpa"), mb)
    suite.row("flash2", lambda: suite.build("flash2"), mb)
    # flex attention runs compiled on the GPU; on CPU the backend refuses training before compiling
    suite.row("flex (compiled)" if suite.cuda else "flex", lambda: suite.build("flex", compile=suite.cuda), mb)

    print("2. FP8 (torchao float8, compiled) vs bf16 (compiled)")
    reason = fp8_unavailable(suite.cuda)
    if reason:
        print(f"  FP8 skipped: {reason}{suite.tag}")
    else:
        bf16 = suite.row("bf16 compiled", lambda: suite.build("sdpa", compile=True), mb)
        fp8 = suite.row("fp8 compiled", lambda: suite.build("sdpa", compile=True, fp8=True), mb)
        if bf16 and fp8:
            print(f"  FP8 speed-up over bf16: {fp8['tokens_per_s'] / bf16['tokens_per_s']:.2f}x")

    print("3. chunked cross-entropy memory")
    chunked_ce_memory(suite, rows=mb * suite.seq, chunk=args.ce_chunk if suite.cuda else 32)

    print("4. activation checkpointing cost")
    ac = suite.row("sdpa + activation checkpointing", lambda: suite.build("sdpa", activation_checkpointing=True), mb)
    if base and ac:
        ratio = ac["peak_gib"] / base["peak_gib"]
        memory = "n/a on CPU" if math.isnan(ratio) else f"x{ratio:.2f}"
        print(
            f"  activation checkpointing: step time x{ac['step_s'] / base['step_s']:.2f}, peak memory {memory}{suite.tag}"
        )

    print("5. largest micro-batch that fits (activation checkpointing on)")
    best, size = ac, mb
    limit = args.max_micro_batch if suite.cuda else 4
    while size * 2 <= limit:
        size *= 2
        try:
            result = suite.row("sdpa + AC", lambda: suite.build("sdpa", activation_checkpointing=True), size)
        except torch.OutOfMemoryError:
            suite.free()
            print(f"  micro-batch {size}: out of memory")
            break
        best = result or best
    if best:
        print(f"  largest micro-batch that fit: {best['tokens_per_s']:,.0f} tokens/s, {suite.mfu(best)}{suite.tag}")
    print(f"suite time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
