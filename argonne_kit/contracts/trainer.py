"""Trainer-callback contract: optional behaviour around the training loop.

The trainer itself runs optimizer steps and saves checkpoints when asked; everything else —
metrics and progress, validation, checkpoint and stop triggers, samples, the quality probe,
divergence detection — is a :class:`TrainerCallback`. Every hook has a do-nothing default;
override the ones you need. Hooks run on every rank, in the order the callbacks were given, so a
hook that runs a collective (a validation pass, gathering a sharded model) stays in step across
ranks; only the main rank (``trainer.strategy.is_main``) should write files or print.

One optimizer step, in order::

    pre_step        before the step
    (the step)      forward/backward over the micro-batches, optimizer update
    pre_reduce      may call trainer.request_save() / trainer.request_stop(reason); the requests
                    are then reduced over ranks with the step's metrics (every rank agrees)
    post_batch      the step's global metrics (loss, lr, grad_norm, …); may call trainer.halt()
    (checkpoint)    when a save or stop was requested: save → post_checkpoint for a verified save
    post_step       the step is complete (validation, periodic probes)

Around the loop: ``pre_train`` once before the first step (after any resume), ``post_train``
once at the end with the outcome — also when the loop raised (outcome None), so callbacks can
release what they hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from argonne_kit.train.trainer import Outcome, Trainer


class TrainerCallback:
    """Base of a trainer callback; every hook defaults to doing nothing."""

    def pre_train(self, trainer: Trainer) -> None:
        """Before the first step of this run (counters already restored on a resume)."""

    def pre_step(self, trainer: Trainer) -> None:
        """Before an optimizer step; ``trainer.counters`` still hold the previous step."""

    def pre_reduce(self, trainer: Trainer) -> None:
        """After the optimizer update, before the step's metrics and requests are reduced over
        ranks: the moment to call ``trainer.request_save()`` / ``trainer.request_stop(reason)``
        for this step; ``trainer.counters`` still hold the previous step."""

    def post_batch(self, trainer: Trainer, stats: dict[str, Any]) -> None:
        """After the optimizer step, with its global metrics (host floats: ``loss``, ``lr``,
        ``grad_norm``, ``units`` and the objective's metrics); counters already advanced."""

    def post_checkpoint(self, trainer: Trainer, path: Path, *, final: bool) -> None:
        """After a checkpoint saved and verified at ``path``; ``final``: the end-of-budget save."""

    def post_step(self, trainer: Trainer) -> None:
        """After the step and any checkpoint it triggered."""

    def post_train(self, trainer: Trainer, outcome: Outcome | None) -> None:
        """After the loop: its outcome, or None when it raised."""
