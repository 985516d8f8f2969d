"""One component of every kind, each implementing exactly its contract and importing only the
public API: if the core called anything the contracts do not declare, training with these fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F

from argonne_kit.contracts.attention import AttentionBackend, AttentionSpec, Capabilities
from argonne_kit.contracts.config import ComponentConfig, ParallelConfig
from argonne_kit.contracts.data import DataContext, DataSize, DataSource
from argonne_kit.contracts.objective import Objective, ObjectiveOutput
from argonne_kit.contracts.parallel import ParallelStrategy, WrapOptions
from argonne_kit.contracts.schedule import LRSchedule
from argonne_kit.errors import RecipeError
from argonne_kit.registry import hookimpl


@attrs.define(kw_only=True)
class NoOptions(ComponentConfig):
    """No settings."""


@attrs.define(kw_only=True)
class NoParallelOptions(ParallelConfig):
    """No settings."""


class PlainAttention(AttentionBackend):
    """Causal softmax attention written out (full or windowed, GQA, cached decode)."""

    name = "plain"
    capabilities = Capabilities(padding_mask=False, segments=False, dropout=False)

    def __init__(self, _config: NoOptions):
        pass

    def forward(self, q, k, v, spec: AttentionSpec, key_padding_mask=None, segment_ids=None):
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scale = spec.scale if spec.scale is not None else q.shape[-1] ** -0.5
        scores = (q @ k.transpose(-1, -2)) * scale
        query_pos = torch.arange(q.shape[2], device=q.device)[:, None] + spec.query_offset
        key_pos = torch.arange(k.shape[2], device=q.device)[None, :]
        visible = key_pos <= query_pos
        if spec.window is not None:
            visible &= query_pos - key_pos <= spec.window
        scores = scores.masked_fill(~visible, float("-inf"))
        return scores.softmax(-1) @ v


class PlainCLM(Objective):
    """Next-token cross-entropy; units = predicted tokens."""

    def __init__(self, _config: NoOptions):
        pass

    def units(self, batch):
        ids = batch["input_ids"]
        return torch.tensor(ids.shape[0] * (ids.shape[1] - 1), device=ids.device)

    def __call__(self, model, batch):
        ids = batch["input_ids"]
        logits = model(input_ids=ids[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="sum")
        return ObjectiveOutput(loss_sum=loss)


class OneProcess(ParallelStrategy):
    """One process on the CPU; checkpoints are one ``torch.save`` file."""

    def __init__(self, _config: NoParallelOptions):
        pass

    def setup(self, device: str = "auto") -> None:
        if device == "cuda":
            raise RecipeError("train.device: the contract-only strategy runs on the CPU")
        self.device = torch.device("cpu")

    def wrap(self, model: torch.nn.Module, options: WrapOptions) -> torch.nn.Module:
        if options.activation_checkpointing or options.compile:
            raise RecipeError("train: the contract-only strategy neither checkpoints activations nor compiles")
        return model

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        if max_norm:
            for g in grads:
                g.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm

    def state_dicts(self, model, optimizer) -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict()}

    def save(self, state: dict[str, Any], path: str) -> None:
        torch.save(state, Path(path) / "state.pt")

    def load(self, model, optimizer, path: str) -> dict[str, Any]:
        state = torch.load(Path(path) / "state.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state.pop("model"))
        optimizer_state = state.pop("optimizer")
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_state)
        return state

    def full_model_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}


class CountingTokens(DataSource):
    """Rows ``start, start+1, …`` (mod 50, offset 3): a stream a model learns in a few steps."""

    def __init__(self, _config: NoOptions, ctx: DataContext):
        self.ctx, self.position = ctx, 0

    def __iter__(self):
        B, T = self.ctx.micro_batch_size, self.ctx.seq_len
        while True:
            first = (self.position * self.ctx.dp_world + self.ctx.dp_rank) * B
            starts = torch.arange(first, first + B)[:, None]
            self.position += 1
            yield {"input_ids": (starts + torch.arange(T + 1)[None, :]) % 50 + 3}

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = state["position"]

    def size(self) -> DataSize:
        return DataSize(tokens=1_000_000)

    def fingerprint(self) -> str:
        return "counting"


class Halving(LRSchedule):
    """Peak LR for the first half of the phase, half of it after."""

    def __init__(self, _config: NoOptions):
        pass

    def factor(self, step: int, total_steps: int) -> float:
        return 1.0 if step < total_steps // 2 else 0.5


@hookimpl
def argonne_kit_register_components(register):
    register("attention", "plain", PlainAttention, NoOptions)
    register("objective", "plain_clm", PlainCLM, NoOptions)
    register("parallel", "one_process", OneProcess, NoParallelOptions)
    register("data", "counting", CountingTokens, NoOptions)
    register("schedule", "halving", Halving, NoOptions)
