import json

import pytest
import torch
from train_fixtures import run_cli, write_recipe


def test_tiny_run_trains_checkpoints_and_exports(tmp_path):
    recipe = write_recipe(tmp_path)
    assert run_cli(recipe) == 0
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert (run / "final_model" / "config.json").is_file()


def train_losses(run):
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


def test_epochs_set_the_phase_length_from_the_data_size(tmp_path):
    recipe = write_recipe(
        tmp_path,
        '[data]\nkind = "synthetic_tokens"\ntokens = 1024\n'
        '[train]\nseq_len = 32\nmicro_batch_size = 4\nepochs = 2\nprecision = "fp32"\n'
        'device = "cpu"\nlog_every = 1\n'
        "[checkpoint]\ninterval_steps = 100\n",
    )
    assert run_cli(recipe) == 0
    assert len(train_losses(tmp_path / "run")) == 2 * 1024 // 128


def test_activation_checkpointing_gives_the_same_losses(tmp_path):
    assert run_cli(write_recipe(tmp_path, run_dir=tmp_path / "plain")) == 0
    assert (
        run_cli(
            write_recipe(tmp_path, name="ckpt.toml", run_dir=tmp_path / "ckpt"), "train.activation_checkpointing=true"
        )
        == 0
    )
    a, b = train_losses(tmp_path / "plain"), train_losses(tmp_path / "ckpt")
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(tmp_path, precision):
    """bf16 autocast, and fp16 autocast with a grad scaler: fp32 master weights, falling loss."""
    assert run_cli(write_recipe(tmp_path), f"train.precision={precision}") == 0
    losses = train_losses(tmp_path / "run")
    assert len(losses) == 8 and losses[-1] < losses[0]
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_00000008" / "state.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in state["model"].values())


def test_a_failing_sample_never_fails_the_run(tmp_path, monkeypatch, capsys):
    """D-21: an exception in sample generation is logged and training goes on; also: the
    progress bar mode and a TensorBoard request without the package."""
    import argonne_kit.train.sampling as sampling

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(sampling, "generate", broken)
    recipe = write_recipe(tmp_path, '[sample]\nenabled = true\n[logging]\nprogress = "bar"\ntensorboard = true\n')
    assert run_cli(recipe) == 0
    out = capsys.readouterr()
    assert "sample: generation failed (RuntimeError: boom); training continues" in out.out
    assert (tmp_path / "run" / "final_model" / "config.json").is_file()
    assert "100%" in out.err or "8/8" in out.err  # the tqdm bar
