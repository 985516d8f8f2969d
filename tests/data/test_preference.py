"""``preference``: every original.md §3.6 format parses to (prompt, chosen, rejected); pairs stay together;
missing answers are counted with file and row; exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from datatest_utils import check_exact_resume, take

from argonne_kit.errors import DataError

USER = {"role": "user", "content": "What is 2 plus 2?"}
FORMATS = [
    {
        "chosen": [USER, {"role": "assistant", "content": "Four."}],
        "rejected": [USER, {"role": "assistant", "content": "Five."}],
    },
    {"prompt": "What is 2 plus 2?", "chosen": "Four.", "rejected": "Five."},
    {
        "chosen": "\n\nHuman: What is 2 plus 2?\n\nAssistant: Four.",
        "rejected": "\n\nHuman: What is 2 plus 2?\n\nAssistant: Five.",
    },
    {"chosen": "user: What is 2 plus 2?\nbot: Four.", "rejected": "user: What is 2 plus 2?\nbot: Five."},
    {"prompt": "<|im_start|>user\nWhat is 2 plus 2?<|im_end|>\n", "chosen": "Four.", "rejected": "Five."},
    {
        "conversation_a": [USER, {"role": "assistant", "content": "Five."}],
        "conversation_b": [USER, {"role": "assistant", "content": "Four."}],
        "winner": "model_b",
    },
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _answer(tokenizer, batch, side):
    labels = batch[f"{side}_labels"][0]
    return tokenizer.decode(labels[labels != -100])


@pytest.mark.parametrize("row", FORMATS, ids=["messages", "prompt+strings", "anthropic", "user-bot", "chatml", "arena"])
def test_formats(make_source, tokenizer, tmp_path, row):
    batch = take(make_source("preference", {"path": _write(tmp_path / "p.jsonl", [row])}, B=1, T=64), 1)[0]
    assert _answer(tokenizer, batch, "chosen") == "Four.<|im_end|>"
    assert _answer(tokenizer, batch, "rejected") == "Five.<|im_end|>"
    n = int((batch["chosen_labels"][0] != -100).nonzero()[0])  # the prompt ends where supervision starts
    assert (
        tokenizer.decode(batch["chosen_input_ids"][0][:n])
        == "<|im_start|>user\nWhat is 2 plus 2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert torch.equal(batch["chosen_input_ids"][0][:n], batch["rejected_input_ids"][0][:n])  # same prompt


def test_missing_rejected_is_counted_with_file_and_row(make_source, tmp_path):
    rows = [FORMATS[1]] * 9 + [{"prompt": "Hi", "chosen": "Hello."}]
    path = _write(tmp_path / "p.jsonl", rows)
    source = make_source("preference", {"path": path, "max_drop_frac": 0.2}, B=1, T=64)
    assert source.stats()["dropped_no_rejected_answer"] == 1
    with pytest.raises(DataError, match=r"no rejected answer: 1 of 10 \(10.0%; first at \S*p\.jsonl row 9\)"):
        make_source("preference", {"path": path}, B=1, T=64)


@pytest.mark.parametrize("workers", [0, 2])
def test_exact_resume_and_pairs_on_one_rank(make_source, qs_cache, workers):
    config = {"num_workers": workers, "pad_to": "longest"}
    batches = check_exact_resume(lambda: make_source("preference", config, B=4, T=80), 8, 3)
    for batch in batches:
        for row in range(4):  # chosen and rejected of a row answer the same prompt
            c, r = batch["chosen_input_ids"][row], batch["rejected_input_ids"][row]
            prompt = batch["chosen_labels"][row] == -100
            first_answer = int(prompt.long().argmin())
            assert torch.equal(c[:first_answer], r[:first_answer])
    rank0 = take(make_source("preference", {}, rank=0, world=2, B=2, T=80), 9)
    rank1 = take(make_source("preference", {}, rank=1, world=2, B=2, T=80), 9)
    rows0 = {tuple(r.tolist()) for b in rank0 for r in b["chosen_input_ids"]}
    rows1 = {tuple(r.tolist()) for b in rank1 for r in b["chosen_input_ids"]}
    assert not rows0 & rows1
