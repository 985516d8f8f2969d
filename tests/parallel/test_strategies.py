"""In-process checks of the parallel plugin: registration, the single strategy, the transforms,
gradient-norm maths, TP refusals, checkpoint verification and the launch advice."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import harness

from argonne_kit.contracts.parallel import ParallelStrategy, WrapOptions
from argonne_kit.errors import CheckpointError, RecipeError
from argonne_kit.launch import relaunch_advice
from argonne_kit.registry import get_registry


def single():
    component = get_registry().get("parallel", "single")
    strategy = component.factory(component.config_cls())
    strategy.setup("cpu")
    return strategy


def test_every_strategy_is_registered_with_its_config():
    registry = get_registry()
    assert {"single", "ddp", "fsdp", "tp"} <= set(registry.names("parallel"))
    for name in ("single", "ddp", "fsdp", "tp"):
        component = registry.get("parallel", name)
        strategy = component.factory(component.config_cls())
        assert isinstance(strategy, ParallelStrategy)
        assert strategy.name == name


def test_single_strategy_basics():
    strategy = single()
    assert (strategy.rank, strategy.world_size, strategy.dp_rank, strategy.dp_world) == (0, 1, 0, 1)
    assert strategy.device == torch.device("cpu") and strategy.is_main
    t = torch.tensor([2.0])
    assert strategy.all_reduce_sum(t) is t and t.item() == 2.0
    assert strategy.broadcast_object({"a": 1}) == {"a": 1}
    with pytest.raises(RecipeError, match="train.device"):
        strategy.setup("tpu")


def test_activation_checkpointing_keeps_names_and_gradients():
    strategy = single()
    plain = strategy.wrap(harness.build_model(), WrapOptions())
    checkpointed = strategy.wrap(harness.build_model(), WrapOptions(activation_checkpointing=True))
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in checkpointed.named_parameters()]
    assert list(plain.state_dict()) == list(checkpointed.state_dict())
    batch = harness.global_batch(0)
    for model in (plain, checkpointed):
        model(input_ids=batch[:, :-1]).logits.float().pow(2).mean().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_global_grad_norm_matches_torch_and_clips():
    strategy = single()
    model = strategy.wrap(harness.build_model(), WrapOptions())
    model(input_ids=harness.global_batch(0)[:, :-1]).logits.float().pow(2).mean().backward()
    expected = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    norm = strategy.clip_grad_norm(model, None)
    torch.testing.assert_close(norm, expected)
    strategy.clip_grad_norm(model, norm.item() / 4)
    clipped = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    torch.testing.assert_close(clipped, norm / 4, rtol=1e-4, atol=0)


def test_tp_refuses_a_degree_that_does_not_split_the_heads():
    from argonne_plugins.parallel.tp import check_tp_shapes

    model = harness.build_model()  # 4 query heads, 2 KV heads
    check_tp_shapes(model, 2)
    with pytest.raises(RecipeError, match="degree 4 does not divide num_key_value_heads"):
        check_tp_shapes(model, 4)


def _recipe(tmp_path, parallel: str, nproc: int) -> Path:
    path = tmp_path / "tp.toml"
    path.write_text(f"""
[model]
hidden_size = 128
num_hidden_layers = 2
num_attention_heads = 4
num_key_value_heads = 2
[parallel]
{parallel}
[run]
nproc = {nproc}
[train]
seq_len = 64
micro_batch_size = 2
total_batch_tokens = 512
""")
    return path


def test_tp_recipe_checks_and_batch_math(tmp_path):
    from argonne_kit.recipe.api import resolve_recipe

    resolved = resolve_recipe(_recipe(tmp_path, 'kind = "tp"\ndegree = 2', 4))
    # 4 processes = 2 data-parallel rows × TP 2: accumulation counts the 2 rows, not 4
    assert resolved.derived["train"]["dp_world_assumed"] == 2
    assert resolved.derived["train"]["grad_accum_steps"] == 2
    with pytest.raises(RecipeError, match="degree 3 does not divide model.num_attention_heads"):
        resolve_recipe(_recipe(tmp_path, 'kind = "tp"\ndegree = 3', 6))
    with pytest.raises(RecipeError, match="does not divide run.nproc"):
        resolve_recipe(_recipe(tmp_path, 'kind = "tp"\ndegree = 2', 3))


def test_checkpoint_round_trip_and_verify_errors(tmp_path):
    strategy = single()
    model = strategy.wrap(harness.build_model(), WrapOptions())
    optimizer = harness.build_optimizer(model)
    harness.train_step(strategy, model, optimizer, 0)
    state = strategy.state_dicts(model, optimizer)
    state["step"] = 1
    path = tmp_path / "ckpt"
    strategy.save(state, str(path))
    layout = json.loads((path / "parallel.json").read_text())
    assert layout == {"format": "torch", "strategy": "single", "world_size": 1, "mesh": {"dp": 1}}

    fresh = strategy.wrap(harness.build_model(), WrapOptions())
    fresh_opt = harness.build_optimizer(fresh)
    assert strategy.load(fresh, fresh_opt, str(path)) == {"step": 1}
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name
    assert fresh_opt.state_dict()["state"][0]["exp_avg"].abs().sum() > 0  # optimizer restored

    blob = (path / "state.pt").read_bytes()
    (path / "state.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="state.pt: unreadable"):
        strategy.load(fresh, fresh_opt, str(path))
    os.remove(path / "parallel.json")
    with pytest.raises(CheckpointError, match="parallel.json: missing"):
        strategy.load(fresh, fresh_opt, str(path))


def test_dcp_checkpoint_load_names_a_truncated_shard(tmp_path):
    from argonne_plugins.parallel import checkpoint

    model = harness.build_model()
    path = tmp_path / "dcp"
    checkpoint.save(checkpoint.native_state(model, None), str(path), fmt="dcp", strategy="fsdp", mesh={"dp": 1})
    checkpoint.load(harness.build_model(), None, str(path))
    shard = next(p for p in path.iterdir() if p.suffix == ".distcp")
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"{path}: does not fit this model"):
        checkpoint.load(harness.build_model(), None, str(path))


def test_dcp_checkpoint_of_another_model_is_refused_with_the_reason(tmp_path):
    from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM
    from argonne_plugins.parallel import checkpoint

    path = tmp_path / "dcp"
    checkpoint.save(
        checkpoint.native_state(harness.build_model(), None), str(path), fmt="dcp", strategy="fsdp", mesh={"dp": 1}
    )
    narrower = ArgonneForCausalLM(
        ArgonneConfig(
            vocab_size=harness.VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
        )
    )
    with pytest.raises(CheckpointError, match="does not fit this model: .*Size mismatch"):
        checkpoint.load(narrower, None, str(path))


def test_full_state_dict_aliases_the_tied_head():
    strategy = single()
    state = strategy.full_model_state_dict(strategy.wrap(harness.build_model(), WrapOptions()))
    assert state["lm_head.weight"] is state["model.embed_tokens.weight"]


def test_relaunch_advice_prints_the_torchrun_line():
    assert relaunch_advice("r.toml", [], None, env={}) is None
    assert relaunch_advice("r.toml", [], 2, env={"WORLD_SIZE": "2"}) is None
    advice = relaunch_advice("my recipe.toml", ["optim.lr=1e-4"], 4, env={})
    assert "torchrun --standalone --nproc-per-node=4 -m argonne_kit run 'my recipe.toml' optim.lr=1e-4" in advice
    multi = relaunch_advice("r.toml", [], 16, env={}, gpus_per_node=8)
    assert "--nnodes=2" in multi and "--nproc-per-node=8" in multi and "argonne-kit slurm" in multi


@pytest.mark.slow  # importing torch._dynamo alone costs seconds
def test_compile_is_applied_per_block_in_place():
    """compile after checkpointing, per block, keeping parameter names (compilation itself
    happens at the first call, which this test does not make)."""
    strategy = single()
    model = strategy.wrap(harness.build_model(), WrapOptions(activation_checkpointing=True, compile=True))
    assert all(block._compiled_call_impl is not None for block in model.model.layers)
    assert "model.layers.0.attn.q_proj.weight" in dict(model.named_parameters())
