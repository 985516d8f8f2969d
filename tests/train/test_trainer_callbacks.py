"""The trainer is built from parts: one step needs a model, an optimizer, an objective, a data
source and a strategy, nothing else; everything optional is a callback with a small contract."""

from __future__ import annotations

import contextlib
import math
import types

import torch
from train_fixtures import ProbeConfig, ProbeObjective, SyntheticConfig, SyntheticTokens

from argonne_kit.contracts.trainer import TrainerCallback
from argonne_kit.registry import get_registry
from argonne_kit.train.callbacks import DivergenceStop
from argonne_kit.train.checkpoint import CheckpointManager, list_checkpoints
from argonne_kit.train.trainer import LoopSettings, Outcome, Trainer


class TinyLM(torch.nn.Module):
    """Embedding → logits: the smallest model the CLM objective can train."""

    def __init__(self, vocab: int = 200):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 16)
        self.head = torch.nn.Linear(16, vocab)

    def forward(self, input_ids):
        return types.SimpleNamespace(logits=self.head(self.embed(input_ids)))


def parts():
    strategy = get_registry().get("parallel", "single").factory(get_registry().get("parallel", "single").config_cls())
    strategy.setup("cpu")
    torch.manual_seed(0)
    model = TinyLM()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ctx = types.SimpleNamespace(dp_rank=0, dp_world=1, micro_batch_size=4, seq_len=16, seed=1)
    data = SyntheticTokens(SyntheticConfig(), ctx)
    return model, optimizer, ProbeObjective(ProbeConfig()), data, strategy


def test_one_step_from_the_five_parts_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, optimizer, objective, data, strategy = parts()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        objective=objective,
        data=data,
        strategy=strategy,
        settings=LoopSettings(total_steps=1, tokens_per_step=64),
    )
    assert trainer.train() is Outcome.COMPLETED
    assert (trainer.counters.global_step, trainer.counters.global_tokens) == (1, 64)
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 0.5  # no schedule: the optimizer's LR is kept
    assert list(tmp_path.iterdir()) == []  # nothing optional ran: no files


class Recorder(TrainerCallback):
    def __init__(self):
        self.events: list[tuple] = []

    def pre_train(self, trainer):
        self.events.append(("pre_train", trainer.counters.global_step))

    def pre_step(self, trainer):
        self.events.append(("pre_step", trainer.counters.global_step))

    def pre_reduce(self, trainer):
        self.events.append(("pre_reduce", trainer.counters.global_step))
        if trainer.counters.global_step == 0:
            trainer.request_save()

    def post_batch(self, trainer, stats):
        self.events.append(("post_batch", trainer.counters.global_step, round(stats["lr"], 6)))

    def post_checkpoint(self, trainer, path, *, final):
        self.events.append(("post_checkpoint", path.name, final))

    def post_step(self, trainer):
        self.events.append(("post_step", trainer.counters.global_step))

    def post_train(self, trainer, outcome):
        self.events.append(("post_train", outcome))


def test_hooks_run_in_the_documented_order(tmp_path):
    model, optimizer, objective, data, strategy = parts()
    constant = get_registry().get("schedule", "constant")
    schedule = constant.factory(constant.config_cls())
    recorder = Recorder()
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        objective=objective,
        data=data,
        strategy=strategy,
        settings=LoopSettings(total_steps=2, tokens_per_step=64, peak_lr=0.25),
        schedule=schedule,
        checkpoints=CheckpointManager(tmp_path, strategy),
        callbacks=[recorder],
    )
    assert trainer.train() is Outcome.COMPLETED
    assert recorder.events == [
        ("pre_train", 0),
        ("pre_step", 0),
        ("pre_reduce", 0),
        ("post_batch", 1, 0.25),
        ("post_checkpoint", "step_00000001", False),
        ("post_step", 1),
        ("pre_step", 1),
        ("pre_reduce", 1),
        ("post_batch", 2, 0.25),
        ("post_step", 2),
        ("post_checkpoint", "step_00000002", True),
        ("post_train", Outcome.COMPLETED),
    ]
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [2]  # keep_last = 1 by default


def test_post_train_runs_with_none_when_the_loop_raises():
    model, optimizer, objective, data, strategy = parts()
    recorder = Recorder()

    class Boom(TrainerCallback):
        def post_batch(self, trainer, stats):
            raise RuntimeError("boom")

    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        objective=objective,
        data=data,
        strategy=strategy,
        settings=LoopSettings(total_steps=3, tokens_per_step=64),
        callbacks=[Boom(), recorder],
    )
    with contextlib.suppress(RuntimeError):
        trainer.train()
    assert recorder.events[-1] == ("post_train", None)


def test_divergence_counts_consecutive_failed_steps_including_a_zero_gradient_at_a_large_loss():
    logs: list[str] = []
    guard = DivergenceStop(3, loss_ceiling=math.log(200), log=logs.append)
    halted: list[str] = []
    trainer = types.SimpleNamespace(counters=types.SimpleNamespace(global_step=7), halt=halted.append)
    steps = [
        (float("nan"), 1.0),
        (2.0, 0.0),  # a NaN, then a zero gradient at a small loss: fine
        (float("nan"), 1.0),
        (40.0, 0.0),
        (3.0, float("inf")),
    ]  # three failures in a row
    for loss, grad_norm in steps:
        guard.post_batch(trainer, {"loss": loss, "grad_norm": grad_norm})
    assert halted == ["3 consecutive failed steps"]
    assert sum("grad_norm 0 with loss 40" in line for line in logs) == 1
    assert len(logs) == 4  # every failed step is logged; the healthy ones are not


def test_grad_clip_bounds_the_update(tmp_path, monkeypatch):
    """``[optim] grad_clip`` reaches the loop as ``LoopSettings.grad_clip`` (runner): with SGD the
    step is lr·(clipped gradient), so its global norm is lr·clip; unclipped it is larger."""
    monkeypatch.chdir(tmp_path)

    def update_norm(grad_clip):
        model, optimizer, objective, data, strategy = parts()
        before = [p.detach().clone() for p in model.parameters()]
        settings = LoopSettings(total_steps=1, tokens_per_step=64, grad_clip=grad_clip)
        Trainer(
            model=model, optimizer=optimizer, objective=objective, data=data, strategy=strategy, settings=settings
        ).train()
        return torch.linalg.vector_norm(torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before)]))

    lr, clip = 0.5, 1e-3
    torch.testing.assert_close(update_norm(clip), torch.tensor(lr * clip), rtol=1e-3, atol=0)
    assert update_norm(0.0) > 10 * lr * clip  # 0 = no clipping
