"""``ultrachat`` and ``cot``: label spans, truncation, drop accounting (D-6), packing, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from datatest_utils import check_exact_resume, take

from argonne_kit.errors import DataError


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _conv(*turns, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return {"messages": messages}


def _supervised_text(tokenizer, batch, row=0):
    labels = batch["labels"][row]
    return tokenizer.decode(labels[labels != -100])


def test_last_assistant_labels_cover_the_final_answer_and_its_end_token(make_source, tokenizer, tmp_path):
    path = _write(tmp_path / "c.jsonl", [_conv("Hi there", "Hello!", "What is 2 plus 3?", "2 plus 3 is 5.")])
    batch = take(make_source("ultrachat", {"path": path, "shuffle": False}, B=1, T=64), 1)[0]
    assert _supervised_text(tokenizer, batch) == "2 plus 3 is 5.<|im_end|>"
    n = int(batch["attention_mask"].sum())
    assert tokenizer.decode(batch["input_ids"][0, :n]).startswith("<|im_start|>user\nHi there<|im_end|>")
    assert (batch["labels"][0, n:] == -100).all() and (batch["input_ids"][0, n:] == tokenizer.pad_token_id).all()
    # labels are aligned with input_ids (not shifted): where supervised, they are equal
    supervised = batch["labels"][0] != -100
    assert torch.equal(batch["labels"][0][supervised], batch["input_ids"][0][supervised])


def test_all_assistant_and_think_scaffold(make_source, tokenizer, tmp_path):
    path = _write(tmp_path / "c.jsonl", [_conv("Hi", "Hello!", "Bye", "Goodbye.", system="Be brief.")])
    every = take(make_source("ultrachat", {"path": path, "mask": "all_assistant"}, B=1, T=64), 1)[0]
    assert _supervised_text(tokenizer, every) == "Hello!<|im_end|>Goodbye.<|im_end|>"
    think = take(make_source("ultrachat", {"path": path, "think_scaffold": True}, B=1, T=64), 1)[0]
    assert _supervised_text(tokenizer, think) == "<think>\n\n</think>\n\nGoodbye.<|im_end|>"


def test_truncation_keeps_a_user_turn_and_overlong_rows_are_counted(make_source, tokenizer, tmp_path):
    long_turn = "the red ball " * 30
    rows = [_conv(long_turn, long_turn, "Short question?", "Short answer.")] + [_conv("Hi", "Hello.")] * 3
    rows.append(_conv("Tell me " + long_turn, "ok"))  # cannot fit even alone
    path = _write(tmp_path / "c.jsonl", rows)
    source = make_source("ultrachat", {"path": path, "shuffle": False, "max_drop_frac": 0.5}, B=1, T=24)
    batches = take(source, 5)
    first = tokenizer.decode(batches[0]["input_ids"][0][batches[0]["attention_mask"][0].bool()])
    assert first.startswith("<|im_start|>user\nShort question?") and "red ball" not in first
    assert source.stats()["overlong_skipped"] == 1
    strict = make_source("ultrachat", {"path": path, "shuffle": False, "max_drop_frac": 0.1}, B=1, T=24)
    with pytest.raises(DataError, match=r"c\.jsonl:row 4.*above max_drop_frac"):
        take(strict, 6)


def test_bad_rows_are_counted_by_reason_with_file_and_row(make_source, tmp_path, caplog):
    rows = [_conv("Hi", "Hello.")] * 18 + [
        {"messages": [{"role": "assistant", "content": "no question"}]},
        {"messages": [{"role": "user", "content": "no answer"}]},
    ]
    path = _write(tmp_path / "c.jsonl", rows)
    source = make_source("ultrachat", {"path": path, "max_drop_frac": 0.2}, B=2, T=32)
    stats = source.stats()
    assert stats["dropped_no_user_turn"] == 1 and stats["dropped_no_assistant_turn"] == 1
    assert "c.jsonl row 18" in caplog.text
    with pytest.raises(
        DataError, match=r"(?s)dropped 2 of 20 rows.*no user turn: 1 of 20 \(5.0%; first at \S*c\.jsonl row 18"
    ):
        make_source("ultrachat", {"path": path, "max_drop_frac": 0.05}, B=2, T=32)
    (tmp_path / "bad.jsonl").write_text('{"messages": []}\n{not json\n')
    with pytest.raises(DataError, match=r"bad\.jsonl: row 1 \(line 2\): not valid JSON"):
        make_source("ultrachat", {"path": str(tmp_path / "bad.jsonl")})


def test_packing_marks_segments_and_restarts_positions(make_source, qs_cache):
    batch = take(make_source("ultrachat", {"packing": True}, B=2, T=96), 1)[0]
    for row in range(2):
        segments, positions = batch["segment_ids"][row], batch["position_ids"][row]
        assert segments.max() >= 2  # several examples share the row
        for s in range(1, int(segments.max()) + 1):
            where = (segments == s).nonzero().flatten()
            assert torch.equal(positions[where], torch.arange(len(where)))
            assert batch["labels"][row, where[0]] == -100  # no label crosses into the next example
        assert torch.equal(batch["attention_mask"][row].bool(), segments > 0)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("packing", [False, True])
def test_exact_resume(make_source, qs_cache, workers, packing):
    config = {"packing": packing, "num_workers": workers, "pad_to": "longest"}
    check_exact_resume(lambda: make_source("ultrachat", config, B=4, T=80), 9, 4)  # crosses an epoch (40 rows)


def test_seeds_change_the_order(make_source, qs_cache):
    a = take(make_source("ultrachat", {}, seed=1, B=4, T=64), 2)
    b = take(make_source("ultrachat", {}, seed=2, B=4, T=64), 2)
    assert not torch.equal(a[0]["input_ids"], b[0]["input_ids"])


def test_cot_defaults_are_no_op_transforms(make_source, tokenizer, tmp_path):
    reasoning = "first I count. " * 8
    rows = [
        {
            "messages": [
                {"role": "user", "content": "Sum?"},
                {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\nFive."},
            ]
        }
    ] * 9
    rows.append({"messages": [{"role": "user", "content": "Sum?"}, {"role": "assistant", "content": "Five."}]})
    path = _write(tmp_path / "cot.jsonl", rows)
    source = make_source("cot", {"path": path, "shuffle": False, "max_drop_frac": 0.2}, B=1, T=128)
    text = _supervised_text(tokenizer, take(source, 1)[0])
    assert text == f"<think>\n{reasoning}\n</think>\n\nFive.<|im_end|>"  # D-6: nothing cut or rewritten
    assert source.stats()["dropped_no_think_block_in_the_final_answer"] == 1
    with pytest.raises(DataError, match="no think block in the final answer: 1 of 10"):
        make_source("cot", {"path": path, "max_drop_frac": 0.05}, B=1, T=128)
    cut = make_source("cot", {"path": path, "shuffle": False, "max_think_tokens": 4, "max_drop_frac": 0.2}, B=1, T=128)
    short = _supervised_text(tokenizer, take(cut, 1)[0])
    assert len(short) < len(text) and short.endswith("</think>\n\nFive.<|im_end|>")
    assert cut.stats()["think_truncated"] == 1
    canonical = make_source(
        "cot", {"path": path, "shuffle": False, "preserve_raw_reasoning": False, "max_drop_frac": 0.2}, B=1, T=128
    )
    assert _supervised_text(tokenizer, take(canonical, 1)[0]).endswith("</think>\n\n**Answer:** Five.<|im_end|>")
