"""One optimizer step: global-unit loss normalisation across micro-batches, refusals at resolve."""

import contextlib

import attrs
import pytest
import torch
from train_fixtures import ProbeConfig, ProbeObjective, run_cli, write_recipe

from argonne_kit.cli import main
from argonne_kit.errors import RecipeError
from argonne_kit.model import build_model
from argonne_kit.recipe.api import resolve_recipe
from argonne_kit.registry import get_registry
from argonne_kit.train.trainer import LoopSettings, Trainer


def one_step(tmp_path, micro_batches, objective, around_step=contextlib.nullcontext):
    """Weights after one SGD step (lr 1, no clipping) on ``micro_batches`` as one accumulation."""
    resolved = resolve_recipe(write_recipe(tmp_path))
    strategy = get_registry().get("parallel", "single").factory(resolved.recipe.parallel.config)
    strategy.setup(device="cpu")
    torch.manual_seed(0)
    model = build_model(resolved.recipe.model, vocab_size=200)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = (
        get_registry().get("schedule", "constant").factory(get_registry().get("schedule", "constant").config_cls())
    )
    settings = LoopSettings(
        total_steps=1,
        grad_accum_steps=len(micro_batches),
        tokens_per_step=0,
        peak_lr=1.0,
        grad_clip=None,
        precision="fp32",
    )
    trainer = Trainer(
        settings=settings,
        strategy=strategy,
        model=model,
        optimizer=optimizer,
        objective=objective,
        schedule=schedule,
        data=None,
    )
    with around_step():
        stats = trainer.step(iter(micro_batches))
    return stats, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_is_normalised_over_all_tokens_of_the_step_not_per_micro_batch(tmp_path):
    """Two micro-batches with 3 and 32 supervised tokens give exactly the loss and the update
    of the same rows as one batch (a mean of per-micro-batch means would not)."""
    g = torch.Generator().manual_seed(1)
    rows = torch.randint(3, 200, (2, 33), generator=g)
    labels = rows.clone()
    labels[0, :30] = -100  # row 0 keeps 3 of its 32 targets
    objective = ProbeObjective(ProbeConfig())
    a = {"input_ids": rows[:1], "labels": labels[:1]}
    b = {"input_ids": rows[1:], "labels": labels[1:]}
    split_stats, split_weights = one_step(tmp_path, [a, b], objective)
    joint_stats, joint_weights = one_step(tmp_path, [{"input_ids": rows, "labels": labels}], objective)
    assert split_stats["units"] == joint_stats["units"] == 3 + 32
    assert split_stats["loss"] == pytest.approx(joint_stats["loss"], rel=1e-6)
    for key in joint_weights:
        torch.testing.assert_close(split_weights[key], joint_weights[key], rtol=1e-5, atol=1e-6)


def test_batch_math_refusal_prints_requested_and_possible(tmp_path, capsys):
    recipe = write_recipe(
        tmp_path,
        "[train]\nseq_len = 32\nmicro_batch_size = 4\ntotal_batch_tokens = 300\n"
        'max_steps = 4\nprecision = "fp32"\ndevice = "cpu"\n',
    )
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "train.total_batch_tokens: requested 300 tokens" in err
    assert "256 and 384" in err


def test_decay_schedule_that_never_decays_is_refused_at_resolve(tmp_path):
    """D-2/D-3: warmup covering the whole phase means min_lr_ratio is dead."""
    recipe = write_recipe(tmp_path, '[schedule]\nkind = "wsd"\nwarmup_steps = 20\ncooldown_frac = 0.2\n')
    with pytest.raises(RecipeError, match="never decays"):
        resolve_recipe(recipe)
    allowed = write_recipe(
        tmp_path,
        '[schedule]\nkind = "wsd"\nwarmup_steps = 20\ncooldown_frac = 0.2\nallow_no_decay = true\n',
        name="allowed.toml",
    )
    resolved = resolve_recipe(allowed)
    assert resolved.derived["train"]["total_steps"] == 8


def test_decay_refusal_when_the_length_comes_from_the_data(tmp_path, capsys):
    """Without max_steps the phase length is known only at run time: the run refuses there."""
    recipe = write_recipe(
        tmp_path,
        '[train]\nseq_len = 32\nmicro_batch_size = 4\nprecision = "fp32"\n'
        'device = "cpu"\n'
        '[schedule]\nkind = "cosine"\nwarmup_steps = 100000\n',
    )
    assert main(["run", str(recipe)]) == 2
    assert "never decays" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resolve_prints_lr_landmarks(tmp_path):
    resolved = resolve_recipe(write_recipe(tmp_path))
    note = next(n for n in resolved.notes if n.startswith("LR"))
    assert "first step 0: 1.500e-03" in note and "last step 7: 3.000e-04" in note
    assert attrs.has(type(resolved.recipe.schedule.config))


def test_one_host_transfer_per_optimizer_step(tmp_path):
    """D-18: the step copies its metrics to the host once (one tolist), never per micro-batch."""
    rows = torch.randint(3, 200, (4, 33))
    transfers = []

    @contextlib.contextmanager
    def spying():
        with pytest.MonkeyPatch.context() as patch:
            for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
                original = getattr(torch.Tensor, name)

                def spy(self, *args, _name=name, _original=original, **kwargs):
                    transfers.append(_name)
                    return _original(self, *args, **kwargs)

                patch.setattr(torch.Tensor, name, spy)
            yield

    micro = [{"input_ids": rows[i : i + 1]} for i in range(4)]
    stats, _ = one_step(tmp_path, micro, ProbeObjective(ProbeConfig()), around_step=spying)
    assert stats["units"] == 4 * 32
    assert transfers == ["tolist"]


@pytest.mark.parametrize(
    "flags, precision, device, warns",
    [
        ("fpu sse avx2 fma", "bf16", "cpu", True),  # AVX2 only: bf16 matmuls are emulated
        ("fpu avx2 avx512f avx512_bf16", "bf16", "cpu", False),
        ("fpu avx2 amx_bf16 amx_tile", "bf16", "cpu", False),
        ("fpu sse avx2 fma", "fp32", "cpu", False),
        ("fpu sse avx2 fma", "bf16", "cuda", False),
    ],
)
def test_bf16_on_a_cpu_without_bf16_instructions_warns(tmp_path, flags, precision, device, warns):
    from argonne_kit.train.trainer import cpu_bf16_warning

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    message = cpu_bf16_warning(precision, torch.device(device), str(cpuinfo))
    assert (message is not None) == warns
    if warns:
        assert "avx512_bf16" in message and 'train.precision = "fp32"' in message
    assert cpu_bf16_warning("bf16", torch.device("cpu"), str(tmp_path / "missing")) is None


def test_an_objective_whose_fields_the_data_lacks_is_refused_by_name(tmp_path, capsys):
    """``Objective.required_fields`` is checked against the batches: SFT needs ``labels``, which a
    token source does not yield — one line naming the objective, the missing field and what the
    data holds, before any step."""
    recipe = write_recipe(tmp_path, '[objective]\nkind = "sft"\n')
    assert run_cli(recipe) == 2
    err = capsys.readouterr().err
    assert "objective SFTObjective needs batch fields ['labels']" in err and "['input_ids']" in err, err
    assert (
        not (tmp_path / "run" / "metrics.jsonl").exists()
        or "loss" not in (tmp_path / "run" / "metrics.jsonl").read_text()
    )
