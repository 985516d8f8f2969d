"""Helpers of the trainer tests: a tiny recipe writer and a synthetic token source.

The synthetic source isolates the trainer from the data plugins: a fixed, learnable token
stream (a repeated pseudo-random phrase) cut into ``seq_len + 1`` windows, with an exact
``state_dict`` position. It is registered once per session as data ``synthetic_tokens`` through
a local plugin, exactly as a third-party plugin would register it.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import attrs
import torch
import torch.nn.functional as F

from argonne_kit.contracts.config import ComponentConfig
from argonne_kit.contracts.data import DataSize, DataSource
from argonne_kit.contracts.objective import Objective, ObjectiveOutput
from argonne_kit.data.order import ordered_map
from argonne_kit.registry import get_registry, hookimpl

HERE = Path(__file__).resolve().parent


@attrs.define(kw_only=True)
class SyntheticConfig(ComponentConfig):
    """A learnable synthetic token stream."""

    vocab: int = 200
    """Token ids are drawn from [3, vocab)."""
    phrase: int = 37
    """Length of the repeated phrase."""
    tokens: int = 20000
    """Tokens per epoch."""
    num_workers: int = 0
    """Batches built by this many DataLoader worker processes (the kit's ``ordered_map``, as the
    real sources do); 0 = in the training process."""


class SyntheticTokens(DataSource):
    """Rank-strided ``[B, T+1]`` windows over a repeated phrase."""

    def __init__(self, cfg: SyntheticConfig, ctx):
        self.cfg, self.ctx = cfg, ctx
        g = torch.Generator().manual_seed(ctx.seed)
        phrase = torch.randint(3, cfg.vocab, (cfg.phrase,), generator=g)
        self.stream = phrase.repeat(cfg.tokens // cfg.phrase + 2)[: cfg.tokens + 1]
        self.position = 0
        self._epoch = 0

    def _windows_per_epoch(self) -> int:
        return (self.cfg.tokens - 1) // self.ctx.seq_len

    def batch_at(self, position: int) -> dict[str, torch.Tensor]:
        B, T = self.ctx.micro_batch_size, self.ctx.seq_len
        rows = []
        for b in range(B):
            index = (position * self.ctx.dp_world + self.ctx.dp_rank) * B + b
            index %= self._windows_per_epoch()
            rows.append(self.stream[index * T : index * T + T + 1])
        return {"input_ids": torch.stack(rows)}

    def __iter__(self):
        for batch in ordered_map(self.batch_at, self.position, self.cfg.num_workers):
            self.position += 1
            yield batch

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]

    def size(self) -> DataSize:
        return DataSize(tokens=self.cfg.tokens)

    def fingerprint(self) -> str:
        return f"synthetic-{self.cfg.vocab}-{self.cfg.phrase}-{self.cfg.tokens}"


@attrs.define(kw_only=True)
class ProbeConfig(ComponentConfig):
    """CLM with test probes."""

    nan_at_call: int = 0
    """On this call (1-based; 0 = never) write a NaN into one weight of the model."""
    signal_at_call: int = 0
    """On this call (1-based; 0 = never) send ``signal`` to this process."""
    signal: str = "SIGUSR1"
    """The signal ``signal_at_call`` sends."""


class ProbeObjective(Objective):
    """Next-token CE over non-masked targets, plus the probes of :class:`ProbeConfig`."""

    def __init__(self, cfg: ProbeConfig):
        self.cfg, self.calls = cfg, 0

    def targets(self, batch):
        """``labels`` (aligned with input_ids, -100 = not supervised) when given, else the ids."""
        return batch.get("labels", batch["input_ids"])[:, 1:]

    def units(self, batch):
        return (self.targets(batch) != -100).sum()

    def __call__(self, model, batch):
        self.calls += 1
        if self.calls == self.cfg.nan_at_call:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")
        if self.calls == self.cfg.signal_at_call:
            os.kill(os.getpid(), signal.Signals[self.cfg.signal])
        logits = model(input_ids=batch["input_ids"][:, :-1]).logits
        y = self.targets(batch)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), ignore_index=-100, reduction="sum"
        )
        return ObjectiveOutput(loss_sum=loss)


class _Plugin:
    @staticmethod
    @hookimpl
    def argonne_kit_register_components(register):
        register("data", "synthetic_tokens", SyntheticTokens, SyntheticConfig)
        register("objective", "probe_clm", ProbeObjective, ProbeConfig)


def register_synthetic_data() -> None:
    registry = get_registry()
    if not registry.has("data", "synthetic_tokens"):
        registry.register_plugin(_Plugin(), "tests-train-synthetic")


TINY_MODEL = """
[model]
kind = "argonne2"
hidden_size = 64
num_hidden_layers = 2
num_attention_heads = 4
num_key_value_heads = 2
intermediate_size = 128
max_position_embeddings = 64
interleaved_local_attention = false
"""


def write_recipe(tmp_path: Path, body: str = "", *, name: str = "recipe.toml", run_dir: Path | None = None) -> Path:
    """A tiny fp32 CPU recipe on the synthetic source; ``body`` adds or overrides sections
    (TOML tables may appear only once, so pass whole tables)."""
    run_dir = run_dir or tmp_path / "run"
    sections = {
        "model": TINY_MODEL,
        "data": '[data]\nkind = "synthetic_tokens"\n',
        "optim": "[optim]\nlr = 3e-3\nweight_decay = 0.1\ngrad_clip = 1.0\n",
        "schedule": '[schedule]\nkind = "wsd"\nwarmup_steps = 2\ncooldown_frac = 0.2\n',
        "train": '[train]\nseq_len = 32\nmicro_batch_size = 4\nmax_steps = 8\nprecision = "fp32"\n'
        'device = "cpu"\nlog_every = 1\n',
        "checkpoint": "[checkpoint]\ninterval_steps = 4\nkeep_last = 2\n",
        "run": f'[run]\ndir = "{run_dir.as_posix()}"\n',
        "sample": "[sample]\nmax_new_tokens = 4\nenabled = false\n",
        "logging": '[logging]\nprogress = "plain"\n',
    }
    body = textwrap.dedent(body)
    for chunk in body.split("\n["):
        chunk = chunk.strip()
        if not chunk:
            continue
        chunk = chunk if chunk.startswith("[") else "[" + chunk
        name_ = chunk[1 : chunk.index("]")]
        sections[name_] = chunk + "\n"
    path = tmp_path / name
    path.write_text("\n".join(sections.values()))
    return path


def run_cli(recipe: Path, *overrides: str) -> int:
    from argonne_kit.cli import main

    return main(["run", str(recipe), *overrides])
