"""The memory model against what a real training step on CPU keeps alive."""

from __future__ import annotations

import pytest
import torch

from argonne_kit.contracts.config import MemoryLayout
from argonne_kit.model import build_model
from argonne_kit.plan.measure import LiveTensorBytes, state_tensors
from argonne_kit.plan.memory import StepSetup, block_activation_bytes, plan_memory
from argonne_kit.plan.params import count_parameters, model_shape
from argonne_kit.recipe.model_sections import Argonne2ModelConfig
from argonne_kit.recipe.sections import OptimConfig
from argonne_kit.train.optimizer import build_optimizer
from argonne_kit.train.trainer import autocast_context
from argonne_plugins.objectives.clm import CausalLMObjective, CLMConfig
from argonne_plugins.parallel.transforms import apply_activation_checkpointing

DDP2, FSDP4 = MemoryLayout(gradient_buckets=True), MemoryLayout(parameter_shards=4)


def _model(d, layers, heads, kv, ffn, vocab, seq, **flags):
    torch.manual_seed(0)
    cfg = Argonne2ModelConfig(
        vocab_size=vocab,
        hidden_size=d,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=ffn,
        max_position_embeddings=seq,
        **flags,
    )
    model = build_model(cfg)
    model.set_attention_backend("sdpa")
    return model


def _saved_bytes(model, ids, precision):
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        weight_copy = t.dim() == 2 and t.shape[0] != ids.numel()  # autocast's low-precision weights
        if storage.data_ptr() not in params and not weight_copy:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast_context(precision, torch.device("cpu")):
        model(input_ids=ids, output_hidden_states=True, return_logits=False)
    return sum(seen.values())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(
    "flags", [{}, {"qk_norm": False, "v_norm": False, "sandwich_norm": False, "swiglu_clamp": 0.0}]
)
def test_block_bytes_equal_the_tensors_a_block_saves(precision, flags):
    ids = torch.randint(0, 100, (2, 16))
    for d, heads, kv, ffn in [(96, 4, 2, 160), (64, 2, 1, 96)]:
        one = _saved_bytes(_model(d, 1, heads, kv, ffn, 100, 16, **flags), ids, precision)
        two = _saved_bytes(_model(d, 2, heads, kv, ffn, 100, 16, **flags), ids, precision)
        shape = model_shape(_model(d, 1, heads, kv, ffn, 100, 16, **flags))
        assert (two - one) / ids.numel() == block_activation_bytes(shape, precision)


def measured_and_planned(d, layers, heads, kv, ffn, vocab, batch, seq, checkpointing, chunk, precision="fp32"):
    model = _model(d, layers, heads, kv, ffn, vocab, seq)
    if checkpointing:
        apply_activation_checkpointing(model.model.layers, 1)
    objective = CausalLMObjective(CLMConfig(loss_chunk_size=chunk))
    optimizer = build_optimizer(model, OptimConfig(), torch.device("cpu"))
    ids = torch.randint(0, vocab, (batch, seq + 1))

    def step():
        with autocast_context(precision, torch.device("cpu")):
            out = objective(model, {"input_ids": ids})
        (out.loss_sum / ids[:, 1:].numel()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # the optimizer state exists from here on: the steady state
    meter = LiveTensorBytes()
    meter.track(state_tensors(model, optimizer) + [ids])
    with meter:
        meter.reset_peak()
        step()
    setup = StepSetup(
        micro_batch_size=batch,
        seq_len=seq,
        precision=precision,
        activation_checkpointing=checkpointing,
        loss_chunk_size=chunk,
        optimizer_temporaries=True,
    )
    planned = plan_memory(model_shape(model), count_parameters(model, vocab).total, setup).peak
    return meter.peak, planned


SHAPES = [(128, 2, 4, 2, 256, 2000, 4, 128), (192, 2, 6, 2, 512, 4000, 2, 64), (64, 4, 2, 1, 192, 1000, 8, 64)]


@pytest.mark.parametrize("shape", SHAPES, ids=["d128", "d192", "d64"])
@pytest.mark.parametrize(
    "checkpointing,chunk",
    [(False, 0), (True, 0), (False, 64), (True, 64)],
    ids=["plain", "checkpointing", "chunked", "checkpointing+chunked"],
)
def test_predicted_peak_within_15_percent_of_measured(shape, checkpointing, chunk):
    measured, planned = measured_and_planned(*shape, checkpointing, chunk)
    assert abs(planned - measured) <= 0.15 * measured, (planned / 2**20, measured / 2**20)


def test_predicted_peak_under_bf16_autocast():
    measured, planned = measured_and_planned(128, 2, 4, 2, 256, 2000, 4, 64, False, 0, "bf16")
    assert abs(planned - measured) <= 0.15 * measured


def test_checkpointing_and_chunking_lower_the_prediction():
    model = _model(64, 4, 2, 1, 192, 1000, 64)
    shape, total = model_shape(model), count_parameters(model, 1000).total
    plain = plan_memory(shape, total, StepSetup(micro_batch_size=8, seq_len=64)).peak
    assert (
        plan_memory(shape, total, StepSetup(micro_batch_size=8, seq_len=64, activation_checkpointing=True)).peak < plain
    )
    assert plan_memory(shape, total, StepSetup(micro_batch_size=8, seq_len=64, loss_chunk_size=64)).peak < plain
    ddp = plan_memory(
        shape, total, StepSetup(micro_batch_size=8, seq_len=64, strategy="ddp", world_size=2, layout=DDP2)
    )
    fsdp = plan_memory(
        shape, total, StepSetup(micro_batch_size=8, seq_len=64, strategy="fsdp", world_size=4, layout=FSDP4)
    )
    assert ddp.components["DDP gradient buckets"] == ddp.components["gradients (fp32)"]
    assert fsdp.components["weights (fp32)"] == pytest.approx(4.0 * total / 4)
