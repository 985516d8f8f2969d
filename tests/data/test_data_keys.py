"""Data-source keys whose effect no other data test shows: each test builds a source with the
default and with a changed value and asserts the batches (or the size, or the refusal) differ."""

from __future__ import annotations

import json

import pytest
import torch
from datatest_utils import take

from argonne_kit.errors import DataError

PAIR = {"prompt": "What is 2 plus 2?", "chosen": "Four.", "rejected": "Five."}
#: A ChatML template with one extra variable: ``{{ persona }}`` becomes a system line when given.
PERSONA_TEMPLATE = (
    "{% if persona is defined %}<|im_start|>system\n{{ persona }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bin_shards_split_picks_the_embedded_split(make_source, qs_cache):
    train = take(make_source("bin_shards", {}, B=2, T=32), 1)[0]["input_ids"]
    validation = take(make_source("bin_shards", {"split": "validation"}, B=2, T=32), 1)[0]["input_ids"]
    assert not torch.equal(train, validation)


def test_fineweb_parquet_split_picks_the_embedded_split(make_source, qs_cache):
    train = take(make_source("fineweb_parquet", {"chunk_rows": 16}, B=2, T=32), 1)[0]["input_ids"]
    validation = take(make_source("fineweb_parquet", {"split": "validation", "chunk_rows": 16}, B=2, T=32), 1)
    assert not torch.equal(train, validation[0]["input_ids"])


def test_fineweb_parquet_append_eos_separates_documents(make_source, tokenizer, qs_cache):
    config = {"split": "validation", "chunk_rows": 16}
    eos = tokenizer.eos_token_id
    with_eos = torch.cat([b["input_ids"] for b in take(make_source("fineweb_parquet", config, B=2, T=64), 4)])
    without = take(make_source("fineweb_parquet", {**config, "append_eos": False}, B=2, T=64), 4)
    assert (with_eos == eos).sum() > 0
    assert (torch.cat([b["input_ids"] for b in without]) == eos).sum() == 0


def test_mixture_total_tokens_sets_the_size(make_source, qs_cache):
    sources = [{"kind": "bin_shards", "weight": 1.0, "split": "validation"}]
    default = make_source("mixture", {"sources": sources}, B=2, T=32).size()
    assert default.tokens is not None and default.tokens != 12345
    assert make_source("mixture", {"sources": sources, "total_tokens": 12345}, B=2, T=32).size().tokens == 12345


@pytest.mark.parametrize("kind", ["ultrachat", "cot", "preference"])
def test_chat_template_kwargs_reach_the_template(make_source, tokenizer, tmp_path, kind):
    if kind == "preference":
        row, key = PAIR, "chosen_input_ids"
    else:
        answer = "<think>\nadd\n</think>\n\nFour." if kind == "cot" else "Four."
        row = {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": answer}]}
        key = "input_ids"
    path = _write(tmp_path / "rows.jsonl", [row])
    original = tokenizer.chat_template
    tokenizer.chat_template = PERSONA_TEMPLATE  # every source of this test renders with it
    try:
        plain = take(make_source(kind, {"path": path, "chat_template_kwargs": {}}, B=1, T=64), 1)[0][key]
        kwargs = {"persona": "You are terse."}
        given = take(make_source(kind, {"path": path, "chat_template_kwargs": kwargs}, B=1, T=64), 1)[0][key]
    finally:
        tokenizer.chat_template = original
    assert "You are terse." not in tokenizer.decode(plain[0])
    assert "<|im_start|>system\nYou are terse.<|im_end|>" in tokenizer.decode(given[0])


def test_preference_max_drop_frac_sets_the_refusal(make_source, tmp_path):
    path = _write(tmp_path / "p.jsonl", [PAIR] * 9 + [{"prompt": "Hi", "chosen": "Hello."}])
    with pytest.raises(DataError, match="above max_drop_frac = 0.05"):
        make_source("preference", {"path": path}, B=1, T=64)
    assert make_source("preference", {"path": path, "max_drop_frac": 0.1}, B=1, T=64).stats()["rows_dropped"] == 1


def test_preference_shuffle_changes_the_order(make_source, tokenizer, tmp_path):
    rows = [{"prompt": f"What is {i} plus {i}?", "chosen": f"{2 * i}.", "rejected": "No."} for i in range(12)]
    path = _write(tmp_path / "p.jsonl", rows)

    def prompts(shuffle):
        batches = take(make_source("preference", {"path": path, "shuffle": shuffle}, B=4, T=64), 3)
        return [tokenizer.decode(row) for b in batches for row in b["chosen_input_ids"]]

    in_file_order = prompts(False)
    assert [f"What is {i} plus" in text for i, text in enumerate(in_file_order)] == [True] * 12
    assert prompts(True) != in_file_order
