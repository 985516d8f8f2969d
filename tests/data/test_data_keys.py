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


def _chat_row(kind, question="2+2?", answer="Four.", *, column="messages"):
    if kind == "preference":
        return {"prompt": question, "chosen": answer, "rejected": "No."}
    if kind == "cot":
        answer = f"<think>\nadd\n</think>\n\n{answer}"
    return {column: [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


IDS = {"ultrachat": "input_ids", "cot": "input_ids", "preference": "chosen_input_ids"}


@pytest.mark.parametrize("kind", ["ultrachat", "cot", "preference"])
def test_shuffle_changes_the_order(make_source, tokenizer, tmp_path, kind):
    rows = [_chat_row(kind, f"What is {i} plus {i}?", f"{2 * i}.") for i in range(12)]
    path = _write(tmp_path / "rows.jsonl", rows)

    def prompts(shuffle):
        batches = take(make_source(kind, {"path": path, "shuffle": shuffle}, B=4, T=64), 3)
        return [tokenizer.decode(row) for b in batches for row in b[IDS[kind]]]

    in_file_order = prompts(False)
    assert [f"What is {i} plus" in text for i, text in enumerate(in_file_order)] == [True] * 12
    assert prompts(True) != in_file_order


@pytest.mark.parametrize("kind", ["ultrachat", "cot", "preference"])
def test_pad_to_longest_narrows_the_batch(make_source, tmp_path, kind):
    path = _write(tmp_path / "rows.jsonl", [_chat_row(kind)] * 2)
    fixed = take(make_source(kind, {"path": path}, B=2, T=64), 1)[0][IDS[kind]]
    longest = take(make_source(kind, {"path": path, "pad_to": "longest"}, B=2, T=64), 1)[0][IDS[kind]]
    assert fixed.shape[1] == 64 and longest.shape[1] < 64


@pytest.mark.parametrize("kind", ["ultrachat", "cot"])
def test_messages_and_prompt_columns_name_the_columns(make_source, tokenizer, tmp_path, kind):
    row = _chat_row(kind, column="turns")
    path = _write(tmp_path / "rows.jsonl", [row])
    with pytest.raises(DataError):  # no `messages` column: every row dropped
        make_source(kind, {"path": path})
    batch = take(make_source(kind, {"path": path, "messages_column": "turns"}, B=1, T=64), 1)[0]
    assert "2+2?" in tokenizer.decode(batch["input_ids"][0])
    # the prompt column supplies the user turn when the messages start with the answer
    asked = {"question": "What is 3 plus 3?", "messages": row["turns"][1:]}
    path = _write(tmp_path / "asked.jsonl", [asked])
    batch = take(make_source(kind, {"path": path, "prompt_column": "question"}, B=1, T=64), 1)[0]
    assert "What is 3 plus 3?" in tokenizer.decode(batch["input_ids"][0])


def test_preference_prompt_column_names_the_column(make_source, tokenizer, tmp_path):
    path = _write(tmp_path / "p.jsonl", [{"question": "What is 3 plus 3?", "chosen": "Six.", "rejected": "No."}])
    with pytest.raises(DataError):
        make_source("preference", {"path": path})
    batch = take(make_source("preference", {"path": path, "prompt_column": "question"}, B=1, T=64), 1)[0]
    assert "What is 3 plus 3?" in tokenizer.decode(batch["chosen_input_ids"][0])


def test_preference_think_scaffold_prefixes_both_answers(make_source, tokenizer, tmp_path):
    path = _write(tmp_path / "p.jsonl", [PAIR])
    plain = take(make_source("preference", {"path": path}, B=1, T=64), 1)[0]
    scaffold = take(make_source("preference", {"path": path, "think_scaffold": True}, B=1, T=64), 1)[0]
    for side in ("chosen", "rejected"):
        assert "<think>" not in tokenizer.decode(plain[f"{side}_input_ids"][0])
        assert "<think>\n\n</think>" in tokenizer.decode(scaffold[f"{side}_input_ids"][0])


def test_cot_allow_non_reasoning_and_source_column(make_source, tmp_path):
    rows = [{**_chat_row("cot"), "tier": "a"}] * 3 + [{**_chat_row("ultrachat"), "tier": "b"}]
    path = _write(tmp_path / "cot.jsonl", rows)
    with pytest.raises(DataError, match="no think block"):
        make_source("cot", {"path": path}, B=1, T=64)
    assert make_source("cot", {"path": path, "allow_non_reasoning": True}, B=1, T=64).stats()["rows_dropped"] == 0
    by_file = make_source("cot", {"path": path, "max_drop_frac": 0.3}, B=1, T=64)  # 1 of 4 rows of the file
    assert set(by_file.drops.seen) == {"cot.jsonl"}
    with pytest.raises(DataError, match="b: no think block"):  # per tier: b drops all of its rows
        make_source("cot", {"path": path, "max_drop_frac": 0.3, "source_column": "tier"}, B=1, T=64)


@pytest.mark.parametrize("kind", ["ultrachat", "cot"])
def test_chat_keys_shared_by_ultrachat_and_cot(make_source, tokenizer, tmp_path, kind, monkeypatch):
    """mask, think_scaffold, chat_template and packing: the same code for both sources."""
    # chat_template sets the run's tokenizer template (the export ships it); this tokenizer is shared
    monkeypatch.setattr(tokenizer, "chat_template", tokenizer.chat_template)
    answer = "<think>\nadd\n</think>\n\nFour." if kind == "cot" else "Four."
    row = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": answer},
        ]
    }
    path = _write(tmp_path / "rows.jsonl", [row] * 4)

    def supervised(T=96, **cfg):
        batch = take(make_source(kind, {"path": path, "shuffle": False, **cfg}, B=1, T=T), 1)[0]
        labels = batch["labels"][0]
        return tokenizer.decode(labels[labels != -100]), batch

    last, plain = supervised()
    assert "Hello." not in last and "Hello." in supervised(mask="all_assistant")[0]
    scaffold = supervised(think_scaffold=True)[0]
    assert scaffold.startswith("<think>") and (kind == "cot" or "<think>" not in last)
    assert "USER: Hi" in tokenizer.decode(supervised(chat_template="argonne1")[1]["input_ids"][0])
    assert "segment_ids" not in plain and supervised(T=400, packing=True)[1]["segment_ids"].max() >= 2
