"""lm-eval-harness scores an export from its command line (``--model hf`` with
``trust_remote_code=True``: the standalone code, no kit import), on a local YAML task over a local
JSONL file, offline; its log-likelihoods equal the kit's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hf_export import export_tiny_chat_model
from transformers import AutoTokenizer

from argonne_kit.model import ArgonneForCausalLM

DOCS = [
    {"question": "what is two plus two?", "answer": " four"},
    {"question": "the quick brown fox", "answer": " jumps"},
]

TASK = """task: argonne_tiny
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
"""


def kit_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context), split into tokens as lm-eval does (whole string encoded once)."""
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    start = len(tokenizer(context, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([whole])
    with torch.no_grad():
        logprobs = model(ids).logits[0, :-1].log_softmax(-1)
    return sum(logprobs[i - 1, whole[i]].item() for i in range(start, len(whole)))


@pytest.mark.slow  # lm-eval imports datasets, evaluate and friends in a subprocess (~15 s)
def test_lm_eval_command_line_scores_an_export_like_the_kit(tmp_path):
    exported = export_tiny_chat_model(tmp_path / "run")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "data.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    (tasks / "tiny.yaml").write_text(TASK.format(data=tasks / "data.jsonl"))
    env = dict(
        os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), OMP_NUM_THREADS="1"
    )
    lm_eval = Path(sys.executable).parent / "lm_eval"
    result = subprocess.run(
        [
            lm_eval,
            "--model",
            "hf",
            "--model_args",
            f"pretrained={exported},trust_remote_code=True",
            "--tasks",
            "argonne_tiny",
            "--include_path",
            str(tasks),
            "--device",
            "cpu",
            "--batch_size",
            "1",
            "--output_path",
            str(tmp_path / "out"),
            "--log_samples",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (samples,) = (tmp_path / "out").rglob("samples_argonne_tiny_*.jsonl")
    scored = [json.loads(line) for line in samples.read_text().splitlines()]
    model = ArgonneForCausalLM.from_pretrained(exported).eval()
    tokenizer = AutoTokenizer.from_pretrained(exported)
    for row in sorted(scored, key=lambda r: r["doc_id"]):
        doc = DOCS[row["doc_id"]]
        theirs = float(row["filtered_resps"][0][0])
        assert theirs == pytest.approx(kit_loglikelihood(model, tokenizer, doc["question"], doc["answer"]), abs=1e-4)
