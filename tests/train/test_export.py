"""``final_model/`` of a chat stage: tokenizer, config, generation config and chat template agree
on the eos (the token that ends an assistant turn)."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from argonne_kit.data.embedded import train_bpe_tokenizer
from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM
from argonne_kit.probe import chat_eos_token_id
from argonne_kit.train.export import export_final_model


def test_a_chat_export_names_one_eos_everywhere(tmp_path):
    tokenizer = train_bpe_tokenizer(
        ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"] * 4, vocab_size=280
    )
    chat_eos = chat_eos_token_id(tokenizer)
    assert tokenizer.eos_token_id != chat_eos  # the document EOS differs from the turn end
    torch.manual_seed(0)
    model = ArgonneForCausalLM(
        ArgonneConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
        )
    )
    final = export_final_model(model, tokenizer, tmp_path, "[model]\n", eos_token_id=chat_eos)
    saved = AutoTokenizer.from_pretrained(final)
    config = json.loads((final / "config.json").read_text())
    generation = json.loads((final / "generation_config.json").read_text())
    assert saved.eos_token_id == config["eos_token_id"] == generation["eos_token_id"] == chat_eos
    assert chat_eos_token_id(saved) == chat_eos  # the chat template ends a turn with it
    assert tokenizer.eos_token == "<|endoftext|>"  # the run's own tokenizer is unchanged
    assert AutoModelForCausalLM.from_pretrained(final).generation_config.eos_token_id == chat_eos
    assert {"modeling_argonne.py", "configuration_argonne.py"} <= {p.name for p in final.iterdir()}
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_argonne.ArgonneForCausalLM"
