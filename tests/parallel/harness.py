"""Shared by the in-process reference run and the torchrun workers: the model, the batches, one
training step the way the trainer does it (global-token loss normalisation, accumulation with
no_sync, global clipping) and comparisons against the reference file."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

VOCAB, SEQ, GLOBAL_BATCH, STEPS, SAVE_AFTER = 128, 16, 8, 5, 3
LR, CLIP = 1e-2, 1.0
#: A large Adam epsilon: with the default 1e-8, parameters whose gradient is ~1e-8 get
#: lr-sized updates whose sign depends on fp32 summation order, so replicas of an identical
#: computation in another layout would differ by ~1e-4 after 5 steps (also single vs
#: single with 2 micro-batches). 1e-3 bounds that amplification to ~lr/eps × rounding.
EPS = 1e-3


def build_model() -> torch.nn.Module:
    """A tiny ``ArgonneForCausalLM`` with every feature the strategies must handle: GQA (4 q /
    2 kv heads), SwiGLU, RMSNorm, QK-norm and V-norm per head, sandwich norms, RoPE, a local
    window on odd layers, logit softcap and tied embeddings."""
    from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM

    torch.manual_seed(0)
    config = ArgonneConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
        interleaved_local_attention=True,
        local_attention_window=8,
        attn_backend="sdpa",
    )
    return ArgonneForCausalLM(config)


def build_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.1, eps=EPS)


def global_batch(step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1000 + step)
    return torch.randint(0, VOCAB, (GLOBAL_BATCH, SEQ + 1), generator=generator)


def train_step(strategy, model, optimizer, step: int, micro_batches: int = 2) -> tuple[float, float]:
    """One optimizer step on this rank's slice of the global batch, split into ``micro_batches``
    (all but the last under ``no_sync``). Returns (global mean loss, global grad norm)."""
    rows = global_batch(step).chunk(strategy.dp_world)[strategy.dp_rank].to(strategy.device)
    units = GLOBAL_BATCH * SEQ  # the global token count, as the trainer all-reduces it
    scale = strategy.dp_world / units  # strategies average gradients over dp ranks (contract)
    loss_sum = torch.zeros((), device=strategy.device)
    chunks = rows.chunk(micro_batches)
    for i, chunk in enumerate(chunks):
        sync = i == len(chunks) - 1
        with strategy.no_sync(model) if not sync else _null():
            logits = model(input_ids=chunk[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, VOCAB).float(), chunk[:, 1:].reshape(-1), reduction="sum")
            (loss * scale).backward()
        loss_sum += loss.detach()
    norm = strategy.clip_grad_norm(model, CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    strategy.all_reduce_sum(loss_sum)
    return loss_sum.item() / units, norm.item()


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def full_grads(strategy, model) -> dict[str, torch.Tensor]:
    """Every parameter's full gradient by name (collective for DTensor gradients)."""
    from torch.distributed.tensor import DTensor

    inner = strategy.unwrap(model)
    out = {}
    for name, param in inner.named_parameters():
        grad = param.grad
        if isinstance(grad, DTensor):
            grad = grad.full_tensor()
        out[name] = grad.detach().cpu().clone()
    return out


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference over the keys of ``b`` (a missing key is infinite)."""
    worst = 0.0
    for key, ref in b.items():
        if key not in a or a[key].shape != ref.shape:
            return float("inf")
        worst = max(worst, (a[key].float() - ref.float()).abs().max().item())
    return worst


def run_reference(single, out_dir: str) -> dict:
    """The single-process run every strategy is compared with; also leaves the step-3
    checkpoint (torch format) for the cross-strategy loads."""
    from argonne_kit.contracts.parallel import WrapOptions

    model = single.wrap(build_model(), WrapOptions())
    optimizer = build_optimizer(model)
    ref = {"losses": [], "norms": []}
    for step in range(STEPS):
        loss, norm = train_step_with_grads(single, model, optimizer, step, ref)
        ref["losses"].append(loss)
        ref["norms"].append(norm)
        if step + 1 == SAVE_AFTER:
            single.save(single.state_dicts(model, optimizer), os.path.join(out_dir, "single_step3"))
    ref["weights"] = single.full_model_state_dict(model)
    torch.save(ref, os.path.join(out_dir, "reference.pt"))
    return ref


def train_step_with_grads(strategy, model, optimizer, step, record, micro_batches=1):
    """``train_step`` that also records the full gradients (before clipping) of step 0."""
    if step != 0:
        return train_step(strategy, model, optimizer, step, micro_batches)
    original = strategy.clip_grad_norm

    def capture(m, max_norm):
        record["grads0"] = full_grads(strategy, m)
        return original(m, max_norm)

    strategy.clip_grad_norm = capture
    try:
        return train_step(strategy, model, optimizer, step, micro_batches)
    finally:
        del strategy.clip_grad_norm
