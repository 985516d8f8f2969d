"""``argonne-kit run``: turn a resolved recipe into a training run.

Order of work (every rank runs it; only the main rank writes files outside checkpoints):

1. parallel strategy from the registry → ``setup`` (process group, device);
2. run directory: lock, stale checkpoint temporaries collected, ``resolved_recipe.toml`` with
   provenance ([meta]: versions, plugins, git revision, tokenizer hash — D-1);
3. tokenizer, data sources (registry), batch math for the real data-parallel world, the phase
   length, the LR schedule (registry) with its landmarks printed and a never-decaying decay
   schedule refused (D-2/D-3);
4. model (seeded; init weights from ``[init]`` when chaining), wrapped by the strategy;
   optimizer; objective (registry);
5. the trainer with its callbacks (:mod:`argonne_kit.train.callbacks`: stop and checkpoint
   triggers, metrics and progress, divergence stop, validation, samples, the chat probe, the
   export); resume (``run.resume``) or init carry-over; the loop; final save; export + sample only
   when the budget completed and the final save verified (D-25).

Exit status: 0 when completed or stopped early on purpose (wall time, deadline, SIGTERM/SIGUSR1:
saved, resumable); 130 when stopped by SIGINT (saved, resumable); 1 when the final checkpoint
was refused or the run diverged (no export).
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from argonne_kit.contracts.data import DataContext, DataSource
from argonne_kit.contracts.objective import Objective
from argonne_kit.contracts.parallel import PRECISION_DTYPES, WrapOptions
from argonne_kit.contracts.schedule import LRSchedule
from argonne_kit.contracts.trainer import TrainerCallback
from argonne_kit.errors import CheckpointError, RecipeError
from argonne_kit.probe import chat_eos_token_id
from argonne_kit.recipe.api import ResolvedRecipe
from argonne_kit.recipe.diff import RESOLVED_RECIPE_FILE, diff_resolved, format_changes, resolve_any
from argonne_kit.recipe.resolvers import batch_math
from argonne_kit.recipe.schedule_check import check_schedule_decays, lr_landmarks
from argonne_kit.registry import get_registry
from argonne_kit.safe_io import atomic_write_text
from argonne_kit.train.callbacks import (
    ChatProbeDuringTraining,
    CheckpointTriggers,
    DivergenceStop,
    ExportOnCompletion,
    MetricsAndProgress,
    SampleAtCheckpoints,
    StopOnSignalsAndTime,
    Validation,
)
from argonne_kit.train.checkpoint import CheckpointManager, is_checkpoint, load_trainer_state
from argonne_kit.train.export import export_final_model
from argonne_kit.train.fp8 import convert_to_fp8
from argonne_kit.train.init_from import InitSource, check_carry, load_weights, locate_init_source, read_original
from argonne_kit.train.metrics import format_duration, truncate_after
from argonne_kit.train.optimizer import build_optimizer
from argonne_kit.train.provenance import run_meta
from argonne_kit.train.reference import free_memory, precompute_reference
from argonne_kit.train.sampling import has_sharded_parameters, main_rank_model, sample_text
from argonne_kit.train.state import Counters, seed_everything
from argonne_kit.train.stop import StopConditions
from argonne_kit.train.trainer import LoopSettings, Outcome, Trainer, cpu_bf16_warning

EXIT_OK, EXIT_FAILED = 0, 1
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): saved and resumable, like a shell's 128 + signal 2
LOCK_FILE = ".lock"


def run_recipe(resolved: ResolvedRecipe) -> int:
    """Run the recipe to completion (or an early, resumable stop); the process exit status."""
    registry = get_registry()
    parallel = resolved.recipe.parallel
    strategy = registry.get("parallel", parallel.kind).factory(parallel.config)
    strategy.setup(resolved.recipe.train.device)
    try:
        return Run(resolved, strategy, registry).execute()
    finally:
        strategy.teardown()


class RunLock:
    """One run per run directory: an exclusive ``flock`` held by the main rank (released by the
    OS even when the process is killed), so stale temporaries can be collected safely."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise CheckpointError(f"{self.path.parent}: another run is using this run directory") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class Run:
    """Everything one ``argonne-kit run`` builds, in the order of the module doc."""

    def __init__(self, resolved: ResolvedRecipe, strategy, registry):
        self.resolved = resolved
        self.recipe = resolved.recipe
        self.strategy = strategy
        self.registry = registry
        self.run_dir = Path(self.recipe.run.dir)
        self.start_time = time.time()

    def log(self, message: str) -> None:
        if self.strategy.is_main:
            print(message, flush=True)

    # -- the whole run -----------------------------------------------------------------------
    def execute(self) -> int:
        lock = RunLock(self.run_dir)
        if self.strategy.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise RecipeError(f"run.dir: {self.run_dir} exists and is not a directory") from None
            lock.acquire()
        try:
            return self._execute()
        finally:
            lock.release()

    def _execute(self) -> int:
        recipe, strategy, train = self.recipe, self.strategy, self.recipe.train
        init = self._prepare()
        batch = self._batch_math()
        warning = cpu_bf16_warning(train.precision, strategy.device)
        if warning:
            self.log(f"warning: {warning}")
        data = self._data_source(recipe.data, "data")
        val_data = self._data_source(recipe.val_data, "val_data") if recipe.val_data is not None else None
        total_steps = phase_steps(
            train,
            data.size(),
            batch["tokens_per_step"],
            train.micro_batch_size * strategy.dp_world * batch["grad_accum_steps"],
        )
        schedule = self._schedule(total_steps)

        seed_everything(train.seed)
        model, init_counters = self._build_model(init)
        objective = self._component("objective", recipe.objective)
        reference = self._reference_model(objective, init) if objective.needs_reference_model else None
        wrapped = self._wrap(model)
        to_precompute = None  # a reference that scores the data once before the loop, then is freed
        if reference is not None:
            reference = self._place_reference(reference, wrapped)
            if objective.precomputes_reference():
                to_precompute = reference
            else:
                objective.attach_reference(reference)
            del reference
        optimizer = build_optimizer(wrapped, recipe.optim, strategy.device)
        self._log_attention_plan(strategy.unwrap(wrapped))
        # a different stream per rank for anything random in training (the init was shared)
        torch.manual_seed(train.seed + strategy.rank)

        checkpoints = CheckpointManager(
            self.run_dir,
            strategy,
            keep_last=recipe.checkpoint.keep_last,
            keep_every_steps=recipe.checkpoint.keep_every_steps,
            log=self.log,
            async_save=recipe.checkpoint.async_save,
        )
        checkpoints.collect_stale()
        strategy.barrier()
        settings = LoopSettings(
            total_steps=total_steps,
            grad_accum_steps=batch["grad_accum_steps"],
            tokens_per_step=batch["tokens_per_step"],
            peak_lr=recipe.optim.lr,
            grad_clip=recipe.optim.grad_clip,
            precision=train.precision,
            recipe_toml=self.recipe_toml,
        )
        stop = StopConditions(recipe.run, self.start_time)
        trainer = Trainer(
            model=wrapped,
            optimizer=optimizer,
            objective=objective,
            data=data,
            strategy=strategy,
            settings=settings,
            schedule=schedule,
            checkpoints=checkpoints,
            counters=Counters(**init_counters),
            callbacks=self._callbacks(stop, wrapped, objective, val_data),
            log=self.log,
        )
        self._resume_or_carry(trainer, checkpoints, init, wrapped, optimizer)
        self._write_resolved_recipe()  # only once the run is known to start: a refused one changes nothing
        if to_precompute is not None:  # from the (resumed) position: exactly the batches still to come
            plan = [(data, (total_steps - trainer.counters.phase_step) * batch["grad_accum_steps"])]
            if val_data is not None:
                plan.append((val_data, train.val_batches))
            precompute_reference(objective, to_precompute, strategy, plan, train.precision, self.log)
            del to_precompute
            free_memory(strategy.device)
        outcome = trainer.train()
        strategy.barrier()
        return self._exit_status(outcome, trainer, stop)

    # -- building ----------------------------------------------------------------------------
    def _prepare(self) -> InitSource | None:
        """Tokenizer, init source (its position settings inherited) and provenance."""
        from argonne_kit.data.tokenizer import load_tokenizer

        self.tokenizer, tokenizer_sha = load_tokenizer(self.recipe.tokenizer.path, self.resolved.base_dir)
        init = self._init_source()
        if init is not None:
            self._inherit_position_settings(init)
        self.resolved.meta.update(
            run_meta(
                self.registry,
                tokenizer_name=self.tokenizer.name_or_path,
                tokenizer_sha256=tokenizer_sha,
                world_size=self.strategy.world_size,
            )
        )
        self.recipe_toml = self.resolved.to_toml()
        return init

    def _batch_math(self) -> dict[str, int]:
        train, strategy = self.recipe.train, self.strategy
        if self.recipe.run.nproc is not None and self.recipe.run.nproc != strategy.world_size:
            raise RecipeError(
                f"run.nproc: the recipe expects {self.recipe.run.nproc} processes, this run has {strategy.world_size}"
            )
        batch = batch_math(train.total_batch_tokens, train.micro_batch_size, train.seq_len, strategy.dp_world)
        self.log(
            f"batch: requested {train.total_batch_tokens or batch['tokens_per_step']:,} tokens/step, "
            f"actual {batch['tokens_per_step']:,} = {train.micro_batch_size} rows × {train.seq_len} tokens × "
            f"{strategy.dp_world} ranks × {batch['grad_accum_steps']} accumulation steps"
        )
        return batch

    def _schedule(self, total_steps: int) -> LRSchedule:
        """The LR schedule, refused when it should decay and never does (D-2/D-3); its
        landmarks printed."""
        recipe = self.recipe
        schedule = self._component("schedule", recipe.schedule)
        check_schedule_decays(recipe.schedule.kind, schedule, total_steps)
        self.log(
            f"phase: {total_steps:,} optimizer steps; LR "
            + ", ".join(
                f"{name} (step {step}) {lr:.3e}"
                for name, step, lr in lr_landmarks(schedule, total_steps, recipe.optim.lr)
            )
        )
        return schedule

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        train = self.recipe.train
        convert_to_fp8(model, train.fp8, self.strategy.device, lm_head=train.fp8_lm_head, log=self.log)
        wrapped = self.strategy.wrap(
            model,
            WrapOptions(
                activation_checkpointing=train.activation_checkpointing,
                checkpoint_every=train.checkpoint_every,
                compile=train.compile,
                compile_mode=train.compile_mode,
                # sharded strategies with mixed_precision = true keep parameters in this dtype for compute
                param_dtype=None if train.precision == "fp32" else PRECISION_DTYPES[train.precision],
            ),
        )
        if self.strategy.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return wrapped

    def _callbacks(
        self, stop: StopConditions, wrapped: torch.nn.Module, objective: Objective, val_data: DataSource | None
    ) -> list[TrainerCallback]:
        """Everything the loop does besides steps and saves, in hook order."""
        recipe, strategy = self.recipe, self.strategy
        metrics = MetricsAndProgress(
            self.run_dir,
            tensorboard=recipe.logging.tensorboard,
            progress=recipe.logging.progress,
            log_every=recipe.train.log_every,
            is_main=strategy.is_main,
            log=self.log,
        )
        callbacks: list[TrainerCallback] = [
            StopOnSignalsAndTime(stop),
            CheckpointTriggers(recipe.checkpoint.interval_steps, recipe.checkpoint.interval_s),
            metrics,
            DivergenceStop(recipe.train.max_failed_steps, math.log(len(self.tokenizer)), self.log),
        ]
        if val_data is not None:
            callbacks.append(
                Validation(val_data, batches=recipe.train.val_batches, every=recipe.train.val_every, report=metrics)
            )
        callbacks.append(SampleAtCheckpoints(lambda step: self._sample_at(wrapped, step)))
        if recipe.eval.probe:
            callbacks.append(
                ChatProbeDuringTraining(lambda step, label: self._probe(wrapped, step, label), recipe.eval.probe_every)
            )
        callbacks.append(ExportOnCompletion(lambda trainer: self._export(trainer, wrapped, objective)))
        return callbacks

    # -- pieces ------------------------------------------------------------------------------
    def _component(self, kind: str, section):
        return self.registry.get(kind, section.kind).factory(section.config)

    def _data_source(self, section, name: str):
        if section is None:
            raise RecipeError(
                f"{self.resolved.source}: [{name}] is required to train (kind = one of "
                f"{', '.join(self.registry.names('data'))})"
            )
        train, strategy = self.recipe.train, self.strategy
        context = DataContext(
            dp_rank=strategy.dp_rank,
            dp_world=strategy.dp_world,
            micro_batch_size=train.micro_batch_size,
            seq_len=train.seq_len,
            seed=train.seed,
            tokenizer=self.tokenizer,
            recipe_dir=str(self.resolved.base_dir),
        )
        return self.registry.get("data", section.kind).factory(section.config, context)

    def _init_source(self) -> InitSource | None:
        init = self.recipe.init
        if init.from_ is None:
            return None
        source = locate_init_source(init.from_, self.resolved.base_dir)
        check_carry(source, init.carry)
        return source

    def _build_model(self, init: InitSource | None) -> tuple[torch.nn.Module, dict[str, int]]:
        """The bare model (fp32, CPU), with init weights for original/HF sources (ours load
        through the strategy after wrapping, so they reshard)."""
        model = self._new_model()
        counters = {"global_step": 0, "global_tokens": 0}
        if init is not None and init.kind != "checkpoint":
            # loaded on a resume too (then overwritten): a reference model copies these weights
            counters = load_weights(model, init)
            self.log(f"init: weights from {init.kind} {init.path}")
        return model, counters

    def _new_model(self) -> torch.nn.Module:
        from argonne_kit.model import build_model

        model = build_model(self.recipe.model, len(self.tokenizer))
        attention = self.recipe.attention
        backend = None if attention.kind == "auto" else self._component("attention", attention)
        model.set_attention_backend(attention.kind, backend)
        if self.tokenizer.eos_token_id is not None:
            model.config.eos_token_id = self.tokenizer.eos_token_id
            model.config.pad_token_id = (
                self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            )
        return model

    def _inherit_position_settings(self, init: InitSource) -> None:
        """D-26: RoPE θ and the context come from the init model unless the recipe sets them."""
        from argonne_kit.stage_chain import explicit_model_keys, inherit_position_settings, read_init_model_config

        raw = self.resolved.raw
        explicit = explicit_model_keys(raw) if raw is not None else set()
        section = self.recipe.model
        section.config, notes = inherit_position_settings(
            section.config, read_init_model_config(init.kind, init.path), explicit
        )
        for note in notes:
            self.log(note)

    def _reference_model(self, objective, init: InitSource | None) -> torch.nn.Module:
        """The frozen reference of a preference objective: the model named by the objective
        (``reference_source``), by default the one the policy starts from — never a copy of the
        current policy, which has moved after a resume."""
        path = objective.reference_source(self.recipe.init.from_)
        if path is None:
            raise RecipeError("objective: needs a reference model; set [init] from")
        source = (
            init
            if init is not None and path == self.recipe.init.from_
            else locate_init_source(path, self.resolved.base_dir)
        )
        reference = self._new_model()
        if source.kind == "checkpoint":
            self.strategy.load(reference, None, str(source.path))
        else:
            load_weights(reference, source)
        self.log(f"reference model: {source.kind} {source.path}")
        return reference

    def _place_reference(self, reference: torch.nn.Module, wrapped: torch.nn.Module) -> torch.nn.Module:
        """On the policy's device; sharded like the policy when the strategy shards (no DDP
        wrapper: the reference gets no gradients)."""
        if has_sharded_parameters(self.strategy.unwrap(wrapped)):
            return self.strategy.wrap(reference, WrapOptions())
        return reference.to(self.strategy.device)

    def _resume_path(self) -> Path | None:
        setting = self.recipe.run.resume
        if setting == "never":
            return None
        if setting == "auto":
            return CheckpointManager(self.run_dir, self.strategy, log=self.log).latest()
        path = Path(setting)
        if is_checkpoint(path):
            return path
        latest = CheckpointManager(path, self.strategy, log=self.log).latest()
        if latest is None:
            raise RecipeError(f"run.resume: {setting!r} is neither a checkpoint nor a run directory with one")
        return latest

    def _resume_or_carry(
        self, trainer: Trainer, checkpoints: CheckpointManager, init: InitSource | None, model, optimizer
    ) -> None:
        recipe = self.recipe
        if recipe.run.resume == "never" and checkpoints.checkpoints():
            raise RecipeError(
                f'run.resume = "never" but {checkpoints.dir} already holds checkpoints; '
                f'use a new run.dir or resume = "auto"'
            )
        resume = self._resume_path()
        if resume is not None:
            state = checkpoints.load(resume, model, optimizer)
            trainer.restore(state)
            self.log(
                f"resume: {resume} (step {trainer.counters.global_step}, {trainer.counters.global_tokens:,} tokens)"
            )
            if self.strategy.is_main:
                truncate_after(self.run_dir, trainer.counters.global_step)
            return
        if init is None:
            return
        carry = recipe.init.carry
        if init.kind == "checkpoint":
            with_optimizer = carry in ("weights+optimizer", "all")
            everything = carry == "all"
            state = checkpoints.load(
                init.path, model, optimizer if with_optimizer else None, with_trainer_state=everything
            )
            if not everything:  # counters only: rank 0's record, whatever the world size was
                state = load_trainer_state(init.path, 0, state["manifest"])
            trainer.restore(state, counters=True, position=everything)
            self.log(
                f"init: {carry} from checkpoint {init.path} (cumulative step {state['global_step']}, "
                f'{state["global_tokens"]:,} tokens; a fresh schedule unless carry = "all", D-12)'
            )
        elif init.kind == "original" and carry == "weights+optimizer":
            blob = read_original(init.path)
            if len(optimizer.param_groups) != 1 or "optimizer_state_dict" not in blob:
                raise RecipeError(
                    'init.carry = "weights+optimizer" from an original checkpoint needs its '
                    "optimizer_state_dict and one parameter group (optim.no_decay_* = false)"
                )
            optimizer.load_state_dict(blob["optimizer_state_dict"])
            self.log(f"init: AdamW state from {init.path}")

    def _write_resolved_recipe(self) -> None:
        if not self.strategy.is_main:
            return
        path = self.run_dir / RESOLVED_RECIPE_FILE
        if path.is_file():
            try:
                changes = diff_resolved(resolve_any(path), self.resolved)
            except Exception as exc:
                changes = None
                self.log(f"recipe: could not compare with the previous {path}: {exc}")
            if changes:
                self.log(
                    "recipe: changed since this run directory was last used:\n"
                    + format_changes(changes, "previous", "now")
                )
        atomic_write_text(path, self.recipe_toml)

    def _log_attention_plan(self, model: torch.nn.Module) -> None:
        from argonne_kit.model.hf import ArgonneHFMixin

        if not self.strategy.is_main or not isinstance(model, ArgonneHFMixin):  # every model kind builds one
            return
        precision = self.recipe.train.precision
        dtype = PRECISION_DTYPES[precision]
        try:
            plan = model.attention_plan(device_type=self.strategy.device.type, dtype=dtype, training=True)
        except Exception as exc:
            self.log(f"attention: plan could not be resolved: {exc}")
            return
        groups: dict[tuple[str, Any], list[int]] = {}
        for index, (name, window) in enumerate(plan):
            groups.setdefault((name, window), []).append(index)
        text = "; ".join(
            f"layers {_ranges(idx)}: {name}, " + (f"window {window}" if window else "full causal")
            for (name, window), idx in groups.items()
        )
        self.log(f"attention ({precision}, {self.strategy.device.type}): {text}")

    def _sample_at(self, wrapped: torch.nn.Module, step: int) -> None:
        text = sample_text(
            self.strategy,
            wrapped,
            self.tokenizer,
            self.recipe.sample,
            seed=self.recipe.train.seed + step,
            build_copy=self._new_model,
            log=self.log,
        )
        if text is not None:
            self.log(f"sample at step {step}: {text!r}")

    def _probe(self, wrapped: torch.nn.Module, step: int, label: str) -> None:
        """The chat quality probe (``[eval]``): every rank calls (a sharded model is gathered),
        the main rank answers; telemetry that can never fail the run (D-21)."""
        from argonne_kit.probe import ChatProbe

        try:
            plain = main_rank_model(self.strategy, wrapped, self._new_model)
            if plain is not None:
                probe = ChatProbe.from_config(self.recipe.eval, base_dir=self.resolved.base_dir)
                rows = probe.run(plain, self.tokenizer, self.run_dir, step=step, label=label)
                self.log(
                    f"probe ({label}, step {step}): {rows[0]['prompt']!r} → {rows[0]['answer']!r}"
                    + (f" (+{len(rows) - 1} more in probe.jsonl)" if len(rows) > 1 else "")
                )
        except Exception as exc:
            self.log(f"probe: failed ({type(exc).__name__}: {exc}); training continues")

    def _export(self, trainer: Trainer, wrapped: torch.nn.Module, objective: Objective) -> None:
        """The budget completed and its final checkpoint verified: a last sample, ``final_model/``
        (main rank), the probe after training and the summary (D-25)."""
        strategy, counters = self.strategy, trainer.counters
        strategy.barrier()
        sample = sample_text(
            strategy,
            wrapped,
            self.tokenizer,
            self.recipe.sample,
            seed=self.recipe.train.seed,
            build_copy=self._new_model,
            log=self.log,
        )
        plain = main_rank_model(strategy, wrapped, self._new_model)  # collective when sharded
        if strategy.is_main:
            # a chat stage's model must stop at the chat EOS (<|im_end|>), not the document
            # separator its tokenizer calls eos (D-5)
            eos = chat_eos_token_id(self.tokenizer) if objective.chat_model else None
            path = export_final_model(plain, self.tokenizer, self.run_dir, self.recipe_toml, eos_token_id=eos)
            self.log(f"export: {path}")
        strategy.barrier()
        if sample is not None:
            self.log(f"sample: {sample}")
        if self.recipe.eval.probe:
            self._probe(wrapped, counters.global_step, "after")
        self.log(
            f"SUMMARY: steps {counters.phase_step:,} (cumulative {counters.global_step:,}), tokens "
            f"{counters.global_tokens:,}, training time {format_duration(counters.train_time_s)}, "
            f"run dir {self.run_dir}"
        )

    def _exit_status(self, outcome: Outcome, trainer: Trainer, stop: StopConditions) -> int:
        step = trainer.counters.global_step
        if outcome is Outcome.FAILED:
            self.log("run: the final checkpoint was refused; no export (D-9). Exit status 1.")
            return EXIT_FAILED
        if outcome is Outcome.DIVERGED:
            last_good = trainer.checkpoints.latest() if trainer.checkpoints is not None else None
            self.log(
                f"run: diverged: stopped at step {step} after {self.recipe.train.max_failed_steps} "
                f"consecutive failed steps (train.max_failed_steps); nothing saved. Last good checkpoint: "
                + (f"{last_good} (resume from it with a lower optim.lr)" if last_good else "none")
                + ". Exit status 1."
            )
            return EXIT_FAILED
        if outcome is Outcome.STOPPED:
            self.log(
                f"run: stopped early at step {step}; resume with the same command "
                f"(no final_model/ export until the budget completes, D-25)"
            )
            return EXIT_INTERRUPTED if stop.signal_name == "SIGINT" else EXIT_OK
        return EXIT_OK


def phase_steps(train, size, tokens_per_step: int, rows_per_step: int) -> int:
    """Optimizer steps of this phase: ``max_steps``, else ``max_tokens`` (rounded down to whole
    steps), else ``epochs`` passes over the data."""
    if train.max_steps is not None:
        return train.max_steps
    if train.max_tokens is not None:
        steps = train.max_tokens // tokens_per_step
        if steps < 1:
            raise RecipeError(
                f"train.max_tokens: {train.max_tokens:,} is less than one optimizer step ({tokens_per_step:,} tokens)"
            )
        return steps
    if size.tokens is not None:
        steps = size.tokens * train.epochs // tokens_per_step
    elif size.examples is not None:
        steps = size.examples * train.epochs // rows_per_step
    else:
        raise RecipeError("train: the data source reports no size; set train.max_steps or train.max_tokens")
    if steps < 1:
        raise RecipeError(
            f"train: the data ({size}) holds less than one optimizer step; lower "
            f"train.total_batch_tokens or set train.max_steps"
        )
    return steps


def _ranges(indices: list[int]) -> str:
    return (
        f"{indices[0]}"
        if len(indices) == 1
        else f"{indices[0]}-{indices[-1]}"
        if indices == list(range(indices[0], indices[-1] + 1))
        else ",".join(map(str, indices))
    )
