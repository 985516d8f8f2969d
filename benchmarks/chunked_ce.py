"""Chunked cross-entropy at the real vocabulary: memory and time of the loss step.

The loss step = LM head (``hidden @ W.T``) + cross-entropy, forward and backward, for ``[T, d]``
final hidden states against a ``[V, d]`` tied head (Qwen3/Argonne vocabulary 151,669). Rows:

- ``full logits``: the kit's unchunked path (``logit_loss_sums``, i.e. ``F.cross_entropy`` on the
  full ``[T, V]`` fp32 logits);
- ``kit chunked``: what ``objective.loss_chunk_size`` runs for the kit's models
  (``CausalLMLossMixin.chunked_loss_sums``, here on a plain ``Linear`` head holding the weight),
  which picks the fused path ``argonne_kit.loss.fused_lm_loss_sums``: one autograd node owns the
  head weight; its forward scores each chunk and computes the chunk's gradients right away
  (``grad_hidden`` rows, the weight gradient accumulated into one buffer with ``addmm_``), so the
  step holds one weight gradient and one chunk of logits and never recomputes the head;
- ``kit generic chunked``: ``argonne_kit.loss.lm_loss_sums(..., chunk_size=C)`` — the head and CE
  one row-chunk at a time under activation checkpointing; what the kit keeps for heads the fused
  path must not bypass (FP8, DTensor weights, custom heads), and what ``loss_chunk_size`` ran for
  every head before the fused path: every chunk's backward recomputes the head and produces its
  own ``[V, d]`` weight-gradient term, which autograd sums;
- ``torchtune-style``: torchtune's ``CEWithChunkedOutputLoss`` method (the head's output split in
  chunks, each upcast and scored separately; every chunk's logits stay alive for backward),
  re-implemented here in a few lines because torchtune 0.6.1 does not import against torchao 0.18
  and the other chunked implementations (cut-cross-entropy, liger-kernel) need triton, i.e. a GPU;
- ``full logits (A/A control)``: the full path again, the noise floor.

Memory: each measurement runs in a fresh process; the same code runs once on small shapes (its
kernels' code pages), the weight and the hidden states are allocated in place, then the peak RSS
growth during the loss step is what the step needed: the weight's gradient (``[V, d]``, created by
the step as after ``zero_grad(set_to_none=True)``) plus the loss path's own temporaries (logits,
softmax, their gradients; for chunked paths, the per-chunk weight-gradient terms autograd sums).
The table shows the growth and the growth beyond the weight gradient. Time: the process CPU clock (``--threads 1``) or wall clock of the same step.

    python benchmarks/chunked_ce.py [--vocab 151669] [--hidden 3072] [--seq 1024] [--chunk 1024]
        [--reps 2] [--threads 1] [--clock cpu|wall] [--control] [--rows "kit chunked,kit generic chunked"]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import abba, clock, emit, host_line, peak_rss_mib, ratio_table, rss_mib, run_worker

ROWS = ("full logits", "kit chunked", "kit generic chunked", "torchtune-style", "full logits (A/A control)")


def torchtune_style_loss(hidden, weight, targets, num_chunks: int = 8):
    """torchtune's recipe: the head output in ``num_chunks`` pieces, each upcast to fp32 and scored
    (summed CE over chunks / tokens); the chunks' logits are all kept for backward."""
    import torch.nn.functional as F

    logits = [h @ weight.T for h in hidden.chunk(num_chunks)]
    total = sum(F.cross_entropy(part.float(), t, reduction="sum") for part, t in zip(logits, targets.chunk(num_chunks)))
    return total / (targets != -100).sum()


def kit_head(weight):
    """A causal-LM head as the kit's models have it (``CausalLMLossMixin`` + a plain ``Linear``
    ``lm_head``, no softcap) around ``weight`` itself: no copy, its gradient lands on ``weight``."""
    import torch

    from argonne_kit.model.hf import CausalLMLossMixin
    from argonne_kit.model.linear import Linear

    class Head(CausalLMLossMixin, torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm_head = Linear(weight.size(1), weight.size(0), bias=False, device="meta")
            del self.lm_head.weight  # the benchmark's own leaf tensor instead of a Parameter copy
            self.lm_head.weight = weight

        def logits_from_hidden(self, hidden):
            return self.lm_head(hidden)

    return Head()


def loss_step(row: str, hidden, weight, targets, chunk: int):
    import torch.nn.functional as F

    from argonne_kit.loss import lm_loss_sums, logit_loss_sums

    if row.startswith("full logits"):
        nll, _z, count = logit_loss_sums(F.linear(hidden, weight), targets, False)
        loss = nll / count
    elif row == "kit chunked":
        head = kit_head(weight)
        assert head.fusable_head_weight() is not None, "the kit would not take the fused path here"
        loss_sum, _nll, _z, count = head.chunked_loss_sums(hidden, targets, chunk)
        loss = loss_sum / count
    elif row == "kit generic chunked":
        nll, _z, count = lm_loss_sums(hidden, lambda h: F.linear(h, weight), targets, chunk, False)
        loss = nll / count
    else:
        loss = torchtune_style_loss(hidden, weight, targets, max(1, targets.numel() // chunk))
    loss.backward()
    return loss.detach()


def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    # the same code path once on small shapes: loads the kernels' code pages into the RSS first
    small = torch.randn(2 * args.chunk, args.hidden).requires_grad_()
    loss_step(
        args.row,
        small,
        torch.randn(256, args.hidden).requires_grad_(),
        torch.randint(0, 256, (2 * args.chunk,)),
        args.chunk,
    )
    # in place: no transient copy may raise the high-water mark above the pre-step RSS
    weight = torch.empty(args.vocab, args.hidden).normal_(0, 0.02, generator=gen).requires_grad_()
    hidden = torch.randn(args.seq, args.hidden, generator=gen).requires_grad_()
    targets = torch.randint(0, args.vocab, (args.seq,), generator=gen)
    base = rss_mib()
    if peak_rss_mib() > base + 16:
        raise SystemExit(f"setup left a high-water mark {peak_rss_mib() - base:.0f} MiB above the pre-step RSS")
    tick = clock(args.clock)
    start = tick()
    loss = loss_step(args.row, hidden, weight, targets, args.chunk)
    seconds = tick() - start
    return {"growth": peak_rss_mib() - base, "seconds": seconds, "loss": float(loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=151669, help="vocabulary rows of the head (default 151,669)")
    parser.add_argument("--hidden", type=int, default=3072, help="hidden size (default 3072, Argonne 3.0)")
    parser.add_argument("--seq", type=int, default=1024, help="tokens in the step (default 1024)")
    parser.add_argument("--chunk", type=int, default=128, help="rows per chunk (default 128)")
    parser.add_argument("--reps", type=int, default=2, help="measurements per row, ABBA order (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    parser.add_argument("--control", action="store_true", help="also repeat the full-logits row (A/A)")
    parser.add_argument(
        "--rows",
        default=",".join(r for r in ROWS if "control" not in r),
        help="comma-separated rows to measure besides 'full logits' (default all)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        emit(worker(args))
        return
    chosen = {"full logits", *(r for r in args.rows.split(",") if r)}
    if chosen - set(ROWS):
        parser.error(f"--rows: choose from {', '.join(ROWS)}")
    names = [r for r in ROWS if r in chosen or ("control" in r and args.control)]
    print(host_line(args.threads))
    print(
        f"loss step (LM head + CE, fwd+bwd): V={args.vocab:,}, d={args.hidden}, T={args.seq}, chunk {args.chunk} "
        f"rows, fp32, {args.clock} clock; weight {args.vocab * args.hidden * 4 / 2**20:,.0f} MiB"
        f" (its gradient as large); full logits would be {args.seq * args.vocab * 4 / 2**20:,.0f} MiB",
        flush=True,
    )
    growth: dict[str, list[float]] = {n: [] for n in names}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    losses = {}
    for rep, name in abba(names, args.reps):
        result = run_worker(
            __file__,
            [
                "--row",
                name,
                "--vocab",
                str(args.vocab),
                "--hidden",
                str(args.hidden),
                "--seq",
                str(args.seq),
                "--chunk",
                str(args.chunk),
                "--threads",
                str(args.threads),
                "--clock",
                args.clock,
            ],
            args.threads,
        )
        growth[name].append(result["growth"])
        seconds[name].append(result["seconds"])
        losses[name] = result["loss"]
        print(
            f"  rep {rep} {name:<26} +{result['growth']:,.0f} MiB, {result['seconds']:.2f} s, "
            f"loss {result['loss']:.6f}",
            flush=True,
        )
    print(
        "peak RSS growth of the loss step, MiB (min / median; ratio vs full logits: of min / of median / paired; "
        "target <= 0.3)"
    )
    print("\n".join(ratio_table(growth, "full logits", "MiB", "{:,.0f}")))
    grad_mib = args.vocab * args.hidden * 4 / 2**20
    beyond = {n: [g - grad_mib for g in v] for n, v in growth.items()}
    print(f"the same beyond the weight gradient ({grad_mib:,.0f} MiB), MiB (min / median; ratios)")
    print("\n".join(ratio_table(beyond, "full logits", "MiB", "{:,.0f}")))
    print("time of the loss step, s (min / median; ratios; target <= 1.1)")
    print("\n".join(ratio_table(seconds, "full logits", "s", "{:.2f}")))


if __name__ == "__main__":
    main()
