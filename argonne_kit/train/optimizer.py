"""AdamW with explicit weight-decay groups, and the LR applied from a schedule plugin."""

from __future__ import annotations

import torch

from argonne_kit.recipe.sections import OptimConfig


def embedding_parameters(model: torch.nn.Module) -> set[int]:
    """ids of embedding tables (``nn.Embedding`` weights, and learned position tables named
    ``*embed*``); a tied LM head is the same parameter as the token embedding."""
    ids = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    ids |= {id(p) for n, p in model.named_parameters() if "embed" in n.rsplit(".", 1)[0]}
    return ids


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    """One decayed group and (when exclusions are on) one group with weight_decay 0. A tied
    embedding/head appears once (named_parameters de-duplicates shared parameters)."""
    embeddings = embedding_parameters(model) if cfg.no_decay_embeddings else set()
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for _name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # norm weights (and 1.x biases) are the only parameters with fewer than 2 dims
        excluded = (cfg.no_decay_norms and param.ndim < 2) or id(param) in embeddings
        (no_decay if excluded else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with fp32 state; fused on CUDA unless the recipe says otherwise."""
    fused = cfg.fused if cfg.fused is not None else device.type == "cuda"
    kwargs = {"fused": True} if fused else {}
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, **kwargs)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
