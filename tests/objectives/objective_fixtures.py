"""Tiny models and batches for the objective tests (vocab ≤ 64, 2 layers: milliseconds a step)."""

from __future__ import annotations

import torch

VOCAB = 64


def tiny_qwen3(seed: int = 0) -> torch.nn.Module:
    """A stock Hugging Face Qwen3ForCausalLM (it shifts labels itself when given them)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
    )
    return Qwen3ForCausalLM(config).eval()


def tiny_llama(seed: int = 0) -> torch.nn.Module:
    """A stock Hugging Face LlamaForCausalLM."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def tiny_argonne(seed: int = 0) -> torch.nn.Module:
    """The project's own argonne2 model (3.0-shaped: QK/V-norm, sandwich norm, softcap, tied)."""
    from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM

    torch.manual_seed(seed)
    config = ArgonneConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    return ArgonneForCausalLM(config).eval()


MODELS = {"qwen3": tiny_qwen3, "llama": tiny_llama, "argonne2": tiny_argonne}


def chat_like_batch(rows: int = 3, length: int = 12, seed: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded rows: a prompt (label −100), an answer (labels = ids), then padding."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (rows, length), generator=gen)
    labels = torch.full_like(ids, -100)
    mask = torch.ones_like(ids)
    for r in range(rows):
        prompt, real = 2 + r, length - r  # different prompt and padding lengths per row
        labels[r, prompt:real] = ids[r, prompt:real]
        ids[r, real:] = 0
        mask[r, real:] = 0
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def preference_batch(pairs: int = 4, seed: int = 2) -> dict[str, torch.Tensor]:
    """Chosen and rejected halves with different lengths (the objective pads them together)."""
    chosen = chat_like_batch(pairs, 12, seed)
    rejected = chat_like_batch(pairs, 9, seed + 100)
    # the same prompt on both sides, as a real preference pair has
    rejected["input_ids"][:, :2] = chosen["input_ids"][:, :2]
    out = {f"chosen_{k}": v for k, v in chosen.items()}
    out.update({f"rejected_{k}": v for k, v in rejected.items()})
    return out


class BigramModel(torch.nn.Module):
    """logits[b, t] = table[input_ids[b, t]]: log-probs that are easy to compute by hand."""

    def __init__(self, vocab: int = 8, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=gen, dtype=torch.float64))

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.table[input_ids])


def hand_logprob_sum(table: torch.Tensor, ids: list[int], labels: list[int]) -> tuple[float, int]:
    """Σ log p(labels[t] | ids[t-1]) over supervised t, with plain Python math, and the count."""
    import math

    total, count = 0.0, 0
    for t in range(1, len(ids)):
        if labels[t] == -100:
            continue
        row = table[ids[t - 1]].tolist()
        log_z = math.log(sum(math.exp(v) for v in row))
        total += row[labels[t]] - log_z
        count += 1
    return total, count
