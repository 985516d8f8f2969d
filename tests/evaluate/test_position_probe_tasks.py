"""NLL by position buckets, the probe on any model, and lm-eval tasks on our model object."""

from __future__ import annotations

import json

import pytest
import torch

from argonne_kit.cli import main
from argonne_kit.evaluate.position import PositionBuckets, default_edges


def test_default_edges_double_from_1k_up_to_the_context():
    assert default_edges(13568) == [0, 1024, 2048, 4096, 8192, 13568]
    assert default_edges(256) == [0, 64, 128, 256]


def test_buckets_average_exactly_the_positions_they_cover():
    buckets = PositionBuckets([0, 2, 4, 8])
    nll = torch.arange(20, dtype=torch.float64).view(2, 10)  # column t = position t
    buckets.add(nll)
    rows = buckets.rows()
    # positions 0-1, 2-3, 4-7; positions 8 and 9 lie past the last edge
    assert [r["tokens"] for r in rows] == [4, 4, 8]
    assert rows[0]["nll"] == (0 + 1 + 10 + 11) / 4
    assert rows[1]["nll"] == (2 + 3 + 12 + 13) / 4
    assert rows[2]["nll"] == sum([4, 5, 6, 7, 14, 15, 16, 17]) / 8


def test_nll_by_position_past_the_trained_window(tiny_run, tmp_path, capsys):
    """A model trained at 128 tokens, scored on 512-token windows: the table and the PNG cover
    every bucket with the right token counts. (A 3-step model is too undertrained to show the
    rise past its window; this checks the bookkeeping, not the curve's shape.)"""
    from argonne_kit.data.embedded import ensure_quickstart_shards

    out = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                str(tiny_run),
                "--nll-by-position",
                "--data",
                str(ensure_quickstart_shards("validation")),
                "--seq-len",
                "512",
                "--batch-size",
                "4",
                "--max-batches",
                "2",
                "--buckets",
                "0,32,64,128,256,512",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())["nll_by_position"]
    assert [r["tokens"] for r in rows] == [4 * 2 * n for n in (32, 32, 64, 128, 256)]  # 4 rows × 2 batches
    assert (tmp_path / "nll_by_position.png").read_bytes()[:4] == b"\x89PNG"
    assert "256–512" in capsys.readouterr().out


def test_probe_on_a_model_writes_probe_jsonl(tiny_run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say hi.\nName a colour.\n")
    assert (
        main(
            [
                "eval",
                str(tiny_run),
                "--probe",
                "--probe-prompts",
                str(prompts),
                "--probe-max-new-tokens",
                "3",
                "--probe-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "probe.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["Say hi.", "Name a colour."]
    assert all(r["label"] == "eval" and r["new_tokens"] <= 3 for r in rows)


TASK = """task: tiny_local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
"""


@pytest.mark.slow  # importing lm-eval (datasets, accelerate, …) takes most of its time
def test_lm_eval_local_task_on_our_model(tiny_run, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "mc.jsonl"
    rows = [
        {"question": "Once upon a", "choices": ["time", "zebra"], "answer": 0},
        {"question": "The cat sat on the", "choices": ["mat", "of"], "answer": 0},
        {"question": "One, two,", "choices": ["three", "blue"], "answer": 0},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tmp_path / "task.yaml"
    task.write_text(TASK.format(data=data))
    out = tmp_path / "r.json"
    assert main(["eval", str(tiny_run), "--tasks", str(task), "--out", str(out), "--batch-size", "2"]) == 0
    acc = json.loads(out.read_text())["tasks"]["tiny_local_mc"]["acc,none"]
    assert acc in (0.0, 1 / 3, 2 / 3, 1.0)
