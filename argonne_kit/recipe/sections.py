"""Core-owned recipe sections (the plugin-owned ones are structured by each plugin's class).

Every optional field defaults to None (TOML has no null; see ``convert.unstructure``).
"""

from __future__ import annotations

from typing import Literal

import attrs

from argonne_kit.recipe.validators import non_negative, positive, unit_interval


@attrs.define(kw_only=True)
class TokenizerConfig:
    """Which tokenizer the run uses."""

    path: str | None = None
    """A local tokenizer directory, a ``tokenizer.json`` file, or a Hub id; relative paths resolve
    against the recipe's directory. None = the project's embedded quickstart tokenizer."""


@attrs.define(kw_only=True)
class OptimConfig:
    """AdamW settings."""

    __recipe_hints__ = {"learning_rate": "lr"}

    lr: float = attrs.field(default=3e-4, validator=positive)
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW (β1, β2)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = attrs.field(default=0.1, validator=non_negative)
    """Decoupled weight decay."""
    no_decay_norms: bool = False
    """Exclude norm weights from weight decay (the original decayed everything)."""
    no_decay_embeddings: bool = False
    """Exclude the embedding (and tied head) from weight decay."""
    grad_clip: float = attrs.field(default=1.0, validator=non_negative)
    """Global gradient-norm clip; 0 = no clipping (the norm is still logged)."""
    fused: bool | None = None
    """Use the fused AdamW kernel; None = where available (CUDA)."""


@attrs.define(kw_only=True)
class TrainConfig:
    """Batch math, length of the run and the precision/compute policy."""

    seq_len: int = attrs.field(default=1024, validator=positive)
    """Tokens per training row."""
    micro_batch_size: int = attrs.field(default=8, validator=positive)
    """Rows per forward/backward on each data-parallel rank."""
    total_batch_tokens: int | None = attrs.field(default=None, validator=positive)
    """Tokens per optimizer step over all ranks; gradient accumulation = this /
    (micro_batch_size·seq_len·dp_world), refused unless it divides. None = no accumulation."""
    max_steps: int | None = attrs.field(default=None, validator=positive)
    """Stop after this many optimizer steps (in this phase)."""
    max_tokens: int | None = attrs.field(default=None, validator=positive)
    """Stop after this many tokens (in this phase); rounded down to whole steps."""
    epochs: int = attrs.field(default=1, validator=positive)
    """Passes over the data when neither max_steps nor max_tokens is set."""
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    """fp32 master weights always; bf16/fp16 autocast for compute (fp16 adds a grad scaler)."""
    fp8: Literal["off", "on", "emulate"] = "off"
    """torchao float8 training (tensorwise dynamic scaling) of the block linears and the tied LM
    head: ``on`` needs an NVIDIA GPU with FP8 tensor cores (refused elsewhere); ``emulate`` runs
    the same casts and scales in high precision on any device (tests). Set
    ``model.pad_vocab_to_multiple_of = 128`` so the head is eligible; exports trim it back."""
    fp8_lm_head: bool = True
    """With fp8: convert the tied LM head too (the original's ``--fp8_lm_head 1``)."""
    activation_checkpointing: bool = False
    """Recompute block activations in backward."""
    checkpoint_every: int = attrs.field(default=1, validator=positive)
    """With activation checkpointing: checkpoint every k-th block (1 = all)."""
    compile: bool = False
    """``torch.compile`` the model."""
    compile_mode: str | None = None
    """``torch.compile`` mode (None = default)."""
    seed: int = 444
    """The one seed of the run: model init, data order, dropout, sampling (D-7)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train; auto = CUDA when available."""
    log_every: int = attrs.field(default=10, validator=positive)
    """Write a metrics line every this many optimizer steps."""
    val_every: int | None = attrs.field(default=None, validator=positive)
    """Validate on ``[val_data]`` every this many steps (and at the end); None = only at the end."""
    val_batches: int = attrs.field(default=20, validator=positive)
    """Micro-batches per validation."""
    max_failed_steps: int = attrs.field(default=3, validator=positive)
    """Stop the run (exit status 1, nothing saved, the last good checkpoint named) after this
    many consecutive failed steps: a non-finite loss or gradient norm, or a gradient norm of 0
    with a loss above a uniform guess (ln vocabulary size). A diverged run never recovers, and
    every later step is wasted compute."""


@attrs.define(kw_only=True)
class CheckpointConfig:
    """When to save and what to keep."""

    interval_steps: int | None = attrs.field(default=None, validator=positive)
    """Save every this many optimizer steps."""
    interval_s: float | None = attrs.field(default=None, validator=positive)
    """Save every this many seconds of training."""
    keep_last: int = attrs.field(default=1, validator=positive)
    """Retention: keep the newest N verified checkpoints (each deletion is logged; the newest
    verified one is never deleted)."""
    keep_every_steps: int | None = attrs.field(default=None, validator=positive)
    """Also keep every checkpoint whose step is a multiple of this (milestones)."""
    async_save: bool = False
    """Write checkpoints in a background thread: the training loop pauses only to copy the
    state into host memory. Same gates (verification, atomic rename, retention); one save in
    flight at a time; the run waits for it before exporting. Single-process runs only. The host
    copy is kept between saves and overwritten by the next one (allocating it afresh costs
    seconds of page faults per few GB): the run holds one more copy of the model and optimizer
    state in host memory from the first save on."""


@attrs.define(kw_only=True)
class RunConfig:
    """The run directory, resumption and time limits."""

    dir: str = "runs/default"
    """Run directory: resolved_recipe.toml, metrics.jsonl, checkpoints/, final_model/.
    Relative paths resolve against the current directory."""
    resume: str = "auto"
    """``auto`` = newest verified checkpoint in this run dir if any; ``never``; or a path."""
    wall_time_s: float | None = attrs.field(default=None, validator=positive)
    """Save and exit 0 (no export) this many seconds after start (minus ``exit_margin_s``)."""
    deadline_epoch: float | None = attrs.field(default=None, validator=positive)
    """Save and exit 0 at this absolute UNIX time (minus ``exit_margin_s``)."""
    exit_margin_s: float = attrs.field(default=180.0, validator=non_negative)
    """Safety margin before the wall time / deadline for the final save."""
    nproc: int | None = attrs.field(default=None, validator=positive)
    """Processes the recipe expects (torchrun --nproc_per_node × nodes); None = any."""


@attrs.define(kw_only=True)
class InitConfig:
    """Where the weights come from when a stage chains from an earlier one (D-12)."""

    from_: str | None = attrs.field(default=None, metadata={"key": "from"})
    """A run directory, one of our checkpoints, an original ``checkpoint_step_<N>.pt`` or a
    Hugging Face model directory. None = random initialisation."""
    carry: Literal["weights", "weights+optimizer", "all"] = "weights"
    """What carries over: weights only (a new phase: fresh optimizer and schedule), weights and
    optimizer state, or everything (optimizer, schedule position, data position)."""


@attrs.define(kw_only=True)
class SampleConfig:
    """Text samples written by the main rank at checkpoints (never able to fail the run, D-21)."""

    prompt: str = "Long long time ago"
    """Prompt for samples."""
    max_new_tokens: int = attrs.field(default=64, validator=positive)
    """Tokens generated per sample."""
    temperature: float = attrs.field(default=0.8, validator=non_negative)
    """Sampling temperature (0 = greedy)."""
    top_p: float = attrs.field(default=0.95, validator=unit_interval)
    """Nucleus sampling threshold, in (0, 1]."""
    enabled: bool = True
    """Generate samples at checkpoints and at the end."""


@attrs.define(kw_only=True)
class LoggingConfig:
    """Where progress goes."""

    progress: Literal["auto", "bar", "plain"] = "auto"
    """auto = a progress bar on an interactive terminal, plain log lines otherwise."""
    tensorboard: bool = False
    """Also write TensorBoard events (when the ``tensorboard`` package is installed)."""


@attrs.define(kw_only=True)
class EvalConfig:
    """The recipe's ``[eval]`` section: the chat quality probe (greedy answers to fixed prompts,
    appended to ``RUN_DIR/probe.jsonl`` before, during and after training)."""

    probe: bool = False
    """Run the probe (for chat stages: SFT, DPO, CoT-SFT)."""
    probe_prompts: str | None = None
    """Prompts, one per line (blank lines and lines starting with # are skipped), or a .jsonl of
    ``{"prompt": …}`` / ``{"messages": […]}`` rows; relative to the recipe's directory. None = the
    six built-in prompts."""
    probe_every: int | None = attrs.field(default=None, validator=positive)
    """Also probe every this many optimizer steps; None = only before and after training."""
    probe_max_new_tokens: int = attrs.field(default=160, validator=positive)
    """Tokens generated per answer at most (the original used 160)."""
    probe_system: str | None = None
    """An optional system message put before every prompt."""
