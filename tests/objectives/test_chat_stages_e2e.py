"""SFT → DPO through `argonne-kit run` and run directories, with exact resume mid-SFT and mid-DPO
(the embedded chat and preference samples and tokenizer; a tiny fp32 model on CPU)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from argonne_kit.cli import main

pytestmark = pytest.mark.slow

MODEL = """
[model]
kind = "argonne2"
hidden_size = 64
num_hidden_layers = 2
num_attention_heads = 4
num_key_value_heads = 2
intermediate_size = 128
max_position_embeddings = 128
"""

COMMON = """
[optim]
lr = 3e-3
weight_decay = 0.01
[schedule]
kind = "cosine"
warmup_steps = 1
[checkpoint]
interval_steps = 3
keep_last = 5
[sample]
enabled = false
[logging]
progress = "plain"
"""


def write(path: Path, body: str) -> Path:
    path.write_text(MODEL + COMMON + body)
    return path


def sft_recipe(tmp: Path, run_dir: Path, seed: int = 7) -> Path:
    return write(
        tmp / f"sft_{run_dir.name}.toml",
        f"""
[data]
kind = "ultrachat"
pad_to = "longest"
[objective]
kind = "sft"
[train]
seq_len = 96
micro_batch_size = 4
max_steps = 6
precision = "fp32"
device = "cpu"
seed = {seed}
log_every = 1
[run]
dir = "{run_dir.as_posix()}"
""",
    )


def dpo_recipe(tmp: Path, run_dir: Path, init_from: Path) -> Path:
    return write(
        tmp / f"dpo_{run_dir.name}.toml",
        f"""
[data]
kind = "preference"
pad_to = "longest"
[objective]
kind = "dpo"
beta = 0.5
label_smoothing = 0.05
score = "avg"
chosen_sft_weight = 0.05
[val_data]
kind = "preference"
pad_to = "longest"
shuffle = false
[train]
seq_len = 96
micro_batch_size = 4
max_steps = 6
precision = "fp32"
device = "cpu"
seed = 7
log_every = 1
val_every = 3
val_batches = 2
[init]
from = "{init_from.as_posix()}"
[run]
dir = "{run_dir.as_posix()}"
""",
    )


def records(run_dir: Path, key: str = "loss") -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if key in r}


def checkpoint_weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / f"step_{step:08d}" / "state.pt", map_location="cpu", weights_only=True)[
        "model"
    ]


def resume_copy(full: Path, step: int, resumed: Path) -> None:
    (resumed / "checkpoints").mkdir(parents=True)
    name = f"step_{step:08d}"
    shutil.copytree(full / "checkpoints" / name, resumed / "checkpoints" / name)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """SFT (6 steps) then DPO (6 steps) chained through the SFT run directory."""
    tmp = tmp_path_factory.mktemp("chat_chain")
    sft_dir, dpo_dir = tmp / "sft", tmp / "dpo"
    assert main(["run", str(sft_recipe(tmp, sft_dir))]) == 0
    assert main(["run", str(dpo_recipe(tmp, dpo_dir, sft_dir))]) == 0
    return tmp, sft_dir, dpo_dir


def test_sft_then_dpo_through_run_directories(chain):
    _tmp, sft_dir, dpo_dir = chain
    sft, dpo = records(sft_dir), records(dpo_dir)
    assert sorted(sft) == [1, 2, 3, 4, 5, 6]
    assert sft[6]["loss"] < sft[1]["loss"]
    assert sft[1]["supervised_tokens"] > 0 and sft[1]["nll"] == pytest.approx(sft[1]["loss"], rel=1e-6)
    # DPO continues the cumulative step count of the SFT run it starts from (D-12 counters)
    assert min(dpo) == 7 and len(dpo) == 6
    first = dpo[min(dpo)]
    # step 1: the policy IS the reference (the SFT weights), so every margin is 0 and the
    # label-smoothed sigmoid loss is exactly ln 2 — a wrong reference would show here
    assert first["dpo_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert first["reward_margin"] == pytest.approx(0.0, abs=1e-6)
    last = dpo[max(dpo)]
    assert last["reward_margin"] > 0 and last["dpo_loss"] < math.log(2)
    for key in ("rewards_chosen", "rewards_rejected", "reward_accuracy", "chosen_nll", "chosen_tokens"):
        assert key in last
    # every stage embeds its resolved recipe and exports a chat-capable model
    resolved = (dpo_dir / "resolved_recipe.toml").read_text()
    assert 'kind = "dpo"' in resolved and str(sft_dir.as_posix()) in resolved
    assert (dpo_dir / "final_model" / "config.json").is_file()


def test_precomputed_reference_trains_like_the_live_reference_and_resumes_exactly(chain, capsys):
    """objective.precompute_reference: the reference scores the batches still to come (training
    and validation) once, is freed, and the run is the live-reference run; a resume mid-DPO
    scores only the rest of the phase and ends on the same weights."""
    tmp, sft_dir, dpo_dir = chain
    precomputed = tmp / "dpo_precomputed"
    recipe = dpo_recipe(tmp, precomputed, sft_dir)
    capsys.readouterr()
    assert main(["run", str(recipe), "objective.precompute_reference=true"]) == 0
    assert "scored 8 micro-batches per rank" in capsys.readouterr().out  # 6 training + 2 validation
    live, offline = records(dpo_dir), records(precomputed)
    assert sorted(offline) == sorted(live)
    for step in live:
        for key in ("loss", "dpo_loss", "reward_margin", "grad_norm"):
            assert offline[step][key] == pytest.approx(live[step][key], rel=1e-6, abs=1e-9), (step, key)
    assert records(precomputed, "val_loss")[12]["val_loss"] == pytest.approx(
        records(dpo_dir, "val_loss")[12]["val_loss"], rel=1e-6
    )

    resumed = tmp / "dpo_precomputed_resumed"
    resume_copy(precomputed, 9, resumed)
    assert main(["run", str(dpo_recipe(tmp, resumed, sft_dir)), "objective.precompute_reference=true"]) == 0
    assert "scored 5 micro-batches per rank" in capsys.readouterr().out  # steps 10-12 + validation
    again = records(resumed)
    assert all(again[s]["loss"] == offline[s]["loss"] for s in again)
    a, b = checkpoint_weights(precomputed, 12), checkpoint_weights(resumed, 12)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.distributed
@pytest.mark.parametrize(
    "strategy, overrides",
    [
        ("ddp", []),
        # FSDP shards the reference too; the chunked head runs outside forward on sharded weights
        ("fsdp", ["objective.loss_chunk_size=16"]),
        ("fsdp", ["objective.precompute_reference=true"]),
    ],
    ids=["ddp-live-reference", "fsdp-live-reference-chunked", "fsdp-precomputed-reference"],
)
def test_dpo_on_two_processes_matches_one(chain, strategy, overrides, request):
    """torchrun, 2 gloo ranks × 2 pairs = the single process's 4 pairs per step: the same
    losses, rewards and gradient norms as the one-process run of the chain."""
    tmp, sft_dir, dpo_dir = chain
    run_dir = tmp / f"dpo_{request.node.callspec.id}"
    recipe = dpo_recipe(tmp, run_dir, sft_dir)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "argonne_kit",
        "run",
        str(recipe),
        "train.micro_batch_size=2",
        f"parallel.kind={strategy}",
        *overrides,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert ("reference freed" in proc.stdout) == ("objective.precompute_reference=true" in overrides)
    one, two = records(dpo_dir), records(run_dir)
    assert sorted(two) == sorted(one)
    for step in one:
        assert two[step]["units"] == one[step]["units"] == 4
        for key in ("loss", "dpo_loss", "reward_margin", "reward_accuracy", "grad_norm"):
            assert two[step][key] == pytest.approx(one[step][key], rel=1e-4, abs=1e-6), (step, key)
    assert records(run_dir, "val_loss")[12]["val_loss"] == pytest.approx(
        records(dpo_dir, "val_loss")[12]["val_loss"], rel=1e-5
    )
    assert (run_dir / "final_model" / "model.safetensors").is_file()


def test_resume_mid_sft_is_exact(chain):
    tmp, sft_dir, _ = chain
    resumed = tmp / "sft_resumed"
    resume_copy(sft_dir, 3, resumed)
    assert main(["run", str(sft_recipe(tmp, resumed))]) == 0
    full, again = records(sft_dir), records(resumed)
    assert sorted(again) == [4, 5, 6]
    assert all(full[s]["loss"] == again[s]["loss"] for s in again)
    a, b = checkpoint_weights(sft_dir, 6), checkpoint_weights(resumed, 6)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_mid_dpo_is_exact(chain):
    tmp, sft_dir, dpo_dir = chain
    resumed = tmp / "dpo_resumed"
    resume_copy(dpo_dir, 9, resumed)
    assert main(["run", str(dpo_recipe(tmp, resumed, sft_dir))]) == 0
    full, again = records(dpo_dir), records(resumed)
    assert sorted(again) == [10, 11, 12]
    for step in again:
        for key in ("loss", "dpo_loss", "reward_margin"):
            assert full[step][key] == again[step][key], (step, key)
    a, b = checkpoint_weights(dpo_dir, 12), checkpoint_weights(resumed, 12)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_seed_reaches_the_data_order(chain, tmp_path):
    """D-7: another seed gives another SFT trajectory (data order and init), the same seed the
    same one (the chain's run is the reference)."""
    _, sft_dir, _ = chain
    same, other = tmp_path / "same", tmp_path / "other"
    assert main(["run", str(sft_recipe(tmp_path, same)), "train.max_steps=3"]) == 0
    assert main(["run", str(sft_recipe(tmp_path, other, seed=8)), "train.max_steps=3"]) == 0
    first = records(sft_dir)[1]["loss"]
    assert records(same)[1]["loss"] == first
    assert records(other)[1]["loss"] != first


def test_probe_runs_before_during_after_without_changing_training(chain, tmp_path):
    """[eval] probe: greedy answers appended to probe.jsonl at steps 0, 3 and 6; the losses are
    those of the same run without the probe; the exported chat model stops at <|im_end|> (D-5)."""
    _, sft_dir, _ = chain
    probed = tmp_path / "probed"
    assert (
        main(
            [
                "run",
                str(sft_recipe(tmp_path, probed)),
                "eval.probe=true",
                "eval.probe_every=3",
                "eval.probe_max_new_tokens=4",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in (probed / "probe.jsonl").read_text().splitlines()]
    assert [(r["label"], r["step"]) for r in rows[::6]] == [("before", 0), ("during", 3), ("after", 6)]
    assert len(rows) == 18 and all(r["new_tokens"] <= 4 for r in rows)
    base = records(sft_dir)
    assert all(records(probed)[s]["loss"] == base[s]["loss"] for s in base)
    config = json.loads((probed / "final_model" / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(probed / "final_model")
    assert config["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    generation = json.loads((probed / "final_model" / "generation_config.json").read_text())
    assert tokenizer.eos_token_id == generation["eos_token_id"] == config["eos_token_id"]


def test_a_pipeline_file_runs_sft_then_dpo_and_skips_finished_stages(tmp_path, capsys):
    """`argonne-kit run PIPELINE.toml` (like recipes/quickstart_chat.toml): the stages run in
    order, each chained by its own [init]; a second run skips completed stages; a stage whose
    final_model/ is missing runs again from its checkpoints (no step trained twice)."""
    sft_dir, dpo_dir = tmp_path / "sft", tmp_path / "dpo"
    sft, dpo = sft_recipe(tmp_path, sft_dir), dpo_recipe(tmp_path, dpo_dir, sft_dir)
    pipeline = tmp_path / "chat.toml"
    pipeline.write_text(
        f'[[stage]]\nrecipe = "{sft.name}"\n[[stage]]\nrecipe = "{dpo.name}"\noverrides = ["train.max_steps=5"]\n'
    )
    assert main(["run", str(pipeline), "train.max_steps=3"]) == 0  # the command line wins for both
    out = capsys.readouterr().out
    assert out.index("stage 1 (sft_sft.toml) of 2") < out.index("stage 2 (dpo_dpo.toml) of 2")
    assert sorted(records(sft_dir)) == [1, 2, 3] and sorted(records(dpo_dir)) == [4, 5, 6]
    assert (dpo_dir / "final_model" / "model.safetensors").is_file()
    metrics = (dpo_dir / "metrics.jsonl").read_text()

    assert main(["run", str(pipeline), "train.max_steps=3"]) == 0
    out = capsys.readouterr().out
    assert "stage 1 (sft_sft.toml) of 2: complete" in out and "stage 2 (dpo_dpo.toml) of 2: complete" in out

    shutil.rmtree(dpo_dir / "final_model")
    assert main(["run", str(pipeline), "train.max_steps=3"]) == 0
    out = capsys.readouterr().out
    assert "stage 1 (sft_sft.toml) of 2: complete" in out and "resume:" in out
    assert (dpo_dir / "final_model" / "model.safetensors").is_file()
    assert [r for r in metrics.splitlines() if '"loss"' in r] == [
        r for r in (dpo_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in r
    ]
