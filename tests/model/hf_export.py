"""A tiny exported chat model (ChatML tokenizer, chat EOS) for the TRL, PEFT and lm-eval tests."""

from __future__ import annotations

from pathlib import Path

import torch

from argonne_kit.data.embedded import train_bpe_tokenizer
from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM
from argonne_kit.probe import chat_eos_token_id
from argonne_kit.train.export import export_final_model

TEXTS = [
    "<|im_start|>user\nwhat is two plus two?<|im_end|>\n<|im_start|>assistant\nfour<|im_end|>\n",
    "the quick brown fox jumps over the lazy dog. the answer is four. hello world.",
] * 8


def export_tiny_chat_model(run_dir: Path) -> Path:
    """``run_dir/final_model``: a 2-layer argonne2 model (softcap on) with a 300-token tokenizer."""
    tokenizer = train_bpe_tokenizer(TEXTS, vocab_size=300)
    torch.manual_seed(0)
    model = ArgonneForCausalLM(
        ArgonneConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            final_logit_softcapping=15.0,
        )
    )
    return export_final_model(model, tokenizer, run_dir, "[model]\n", eos_token_id=chat_eos_token_id(tokenizer))
