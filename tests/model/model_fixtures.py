"""Tiny Argonne models shared by the model tests (imported by this folder's conftest)."""

from __future__ import annotations

import re

import pytest
import torch

import argonne_kit  # noqa: F401  (registers the Auto classes)
from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM, ArgonneV1Config, ArgonneV1ForCausalLM

VOCAB = 97


def tiny_config(**overrides) -> ArgonneConfig:
    """A 3.0-shaped argonne2 config at toy size (every extra on, window 4 on odd layers)."""
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=96,
        max_position_embeddings=64,
        qk_norm=True,
        v_norm=True,
        sandwich_norm=True,
        final_logit_softcapping=15.0,
        interleaved_local_attention=True,
        local_attention_window=4,
        rope_theta=1e4,
    )
    fields.update(overrides)
    return ArgonneConfig(**fields)


def randomize_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Norm weights start at one; give them random values so parity tests exercise them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("norm_layer.weight") or ".ln" in name:
                param.copy_(1 + 0.2 * torch.randn(param.shape, generator=gen))
    return model


def released_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict under the released key names (``embed_tokens``, ``blocks.{i}``,
    ``norm``; 1.x: ``token_embedding``, ``position_embedding``, ``blocks.{i}``, ``ln_f``, ``head``)."""
    v1 = isinstance(model, ArgonneV1ForCausalLM)
    out = {}
    for key, value in model.state_dict().items():
        key = re.sub(r"^model\.layers\.", "blocks.", key)
        key = re.sub(r"^model\.", "", key)
        if v1:
            key = re.sub(r"^lm_head\.", "head.", key)
        out[key] = value
    return out


@pytest.fixture
def make_model():
    """``make_model(**config_overrides)`` → an eval-mode tiny argonne2 model (seeded)."""

    def make(seed: int = 0, **overrides) -> ArgonneForCausalLM:
        torch.manual_seed(seed)
        return randomize_norms(ArgonneForCausalLM(tiny_config(**overrides)), seed).eval()

    return make


@pytest.fixture
def make_v1_model():
    """``make_v1_model(**overrides)`` → an eval-mode tiny Argonne 1.x model (seeded)."""

    def make(seed: int = 0, **overrides) -> ArgonneV1ForCausalLM:
        torch.manual_seed(seed)
        fields = dict(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=4, n_embd=32, dropout=0.1)
        fields.update(overrides)
        return randomize_norms(ArgonneV1ForCausalLM(ArgonneV1Config(**fields)), seed).eval()

    return make
