"""SFT labels of a rendered ChatML conversation (the ``ultrachat`` source + the ``sft`` objective):
exactly the assistant tokens, closing ``<|im_end|>`` included, for both masking modes."""

from __future__ import annotations

import json

import pytest
import torch

from argonne_kit.contracts.data import DataContext
from argonne_kit.registry import get_registry
from argonne_plugins.objectives.sft import SFTConfig, SFTObjective

CONVERSATION = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Name a fruit."},
    {"role": "assistant", "content": "An apple."},
    {"role": "user", "content": "And a colour?"},
    {"role": "assistant", "content": "Blue, like the sky."},
]


@pytest.fixture(scope="module")
def tokenizer():
    from argonne_kit.data.embedded import train_bpe_tokenizer

    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in CONVERSATION)
    return train_bpe_tokenizer([text] * 20, vocab_size=300)


def labelled_spans(labels: list[int]) -> list[list[int]]:
    spans, current = [], []
    for value in labels:
        if value == -100:
            if current:
                spans.append(current)
            current = []
        else:
            current.append(value)
    return spans + ([current] if current else [])


@pytest.mark.parametrize("mask,supervised", [("last_assistant", [4]), ("all_assistant", [2, 4])])
def test_labels_are_exactly_the_assistant_turns_with_im_end(tokenizer, tmp_path, mask, supervised):
    (tmp_path / "chat.jsonl").write_text(json.dumps({"prompt": "Name a fruit.", "messages": CONVERSATION}) + "\n")
    component = get_registry().get("data", "ultrachat")
    context = DataContext(
        dp_rank=0, dp_world=1, micro_batch_size=1, seq_len=96, seed=0, tokenizer=tokenizer, recipe_dir=str(tmp_path)
    )
    source = component.factory(component.config_cls(path="chat.jsonl", mask=mask, shuffle=False), context)
    batch = next(iter(source))
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    real = batch["attention_mask"][0].sum().item()

    # the whole row is the template's rendering of the conversation, then padding
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert tokenizer.decode(ids[:real]) == rendered
    # labels equal the ids wherever they are set, and are set exactly on the assistant replies
    assert all(lab in (-100, tok) for lab, tok in zip(labels, ids))
    spans = labelled_spans(labels)
    assert [tokenizer.decode(span) for span in spans] == [CONVERSATION[i]["content"] + "<|im_end|>" for i in supervised]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(span[-1] == im_end for span in spans)
    # what follows a span (the "\n" after <|im_end|>, the next turn, padding) is unsupervised
    assert labels[real:] == [-100] * (len(labels) - real)

    # the objective trains on exactly those tokens, each predicted from the token before it
    objective = SFTObjective(SFTConfig())
    assert objective.units(batch).item() == sum(len(span) for span in spans)
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    model = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=128,
        )
    )
    out = objective(model, batch)
    logits = model(input_ids=batch["input_ids"]).logits[0]
    expected = sum(-torch.log_softmax(logits[t - 1], -1)[labels[t]] for t in range(1, len(labels)) if labels[t] != -100)
    assert out.loss_sum.item() == pytest.approx(expected.item(), rel=1e-5)
