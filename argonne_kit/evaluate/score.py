"""Next-token NLL of every position of a batch of windows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from argonne_kit.train.trainer import autocast_context

#: Rows of hidden states sent through the LM head at once (bounds the logits' memory).
HEAD_CHUNK = 4096


@torch.no_grad()
def token_nll(model: torch.nn.Module, ids: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """``nll [B, T]`` (fp64) of ``ids[:, 1:]`` given ``ids[:, :-1]``; logits are computed in chunks of
    rows for models that expose ``logits_from_hidden`` (the full ``[B·T, V]`` never exists)."""
    device = next(model.parameters()).device
    ids = ids.to(device)
    x, y = ids[:, :-1], ids[:, 1:]
    head = getattr(model, "logits_from_hidden", None)
    with autocast_context(precision, device):
        if head is None:
            logits = model(input_ids=x).logits
            return F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none").double()
        hidden = model(input_ids=x, output_hidden_states=True, return_logits=False).hidden_states[-1]
        flat, targets = hidden.reshape(-1, hidden.size(-1)), y.reshape(-1)
        parts = [
            F.cross_entropy(head(flat[i : i + HEAD_CHUNK]).float(), targets[i : i + HEAD_CHUNK], reduction="none")
            for i in range(0, flat.size(0), HEAD_CHUNK)
        ]
    return torch.cat(parts).double().view_as(y)
