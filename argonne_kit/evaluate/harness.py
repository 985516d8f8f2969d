"""lm-evaluation-harness tasks on our model object, through lm-eval's Python API (``[eval]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argonne_kit.errors import DataError, UsageError


def task_names(spec: str) -> tuple[list[str], str | None]:
    """``T1,T2`` → (names, None); ``task.yaml`` → ([its ``task`` name], its directory to include)."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UsageError(f"--tasks: {spec}: not found")
        import yaml

        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("task"), str):
            raise DataError(f"{spec}: task: an lm-eval task file needs a string 'task' name")
        return [data["task"]], str(path.parent.resolve())
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UsageError("--tasks: no task names given")
    return names, None


def run_tasks(
    model, tokenizer, spec: str, *, batch_size: int = 1, limit: int | None = None, max_length: int | None = None
) -> dict[str, Any]:
    """``{task: {metric: value}}`` of lm-eval's ``simple_evaluate`` on ``model`` (an instance, not a path)."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UsageError("--tasks needs lm-eval: pip install 'argonne-kit[eval]'") from None
    names, include = task_names(spec)
    manager = TaskManager(include_path=include) if include else TaskManager()
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise UsageError(f"--tasks: unknown lm-eval task(s): {', '.join(unknown)}")
    device = str(next(model.parameters()).device)
    lm = HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        device=device,
        max_length=max_length or getattr(model.config, "max_position_embeddings", None),
    )
    results = simple_evaluate(
        model=lm, tasks=names, task_manager=manager, limit=limit, log_samples=False, bootstrap_iters=0
    )
    return {
        task: {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "alias"}
        for task, metrics in results["results"].items()
    }
