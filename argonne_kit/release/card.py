"""The model card (``README.md``) of a release, written from what the run really did.

Three tables: the architecture (from the model's config and its parameter count), the training
(from the resolved recipe and the run's ``metrics.jsonl``: stage, data, steps, tokens, tokens per
step, LR schedule, optimizer, precision, hardware, final loss), and a loading snippet. The loss
plot (``loss.png``) is embedded when the run's metrics can be plotted.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

LOSS_PLOT = "loss.png"


def write_model_card(
    directory: Path, model, recipe_toml: str | None, run_dir: Path | None, name: str, up_to_step: int | None = None
) -> Path:
    """Write ``directory/README.md`` (and ``loss.png`` when ``run_dir`` has metrics to plot);
    ``up_to_step`` limits the training described to that global step (an earlier checkpoint)."""
    recipe = tomllib.loads(recipe_toml) if recipe_toml else {}
    records = _metrics(run_dir, up_to_step)
    plot = _plot(run_dir, directory, up_to_step) if run_dir is not None and records else None
    parts = [
        _front_matter(recipe),
        f"# {name}\n",
        f"A {_params(model)}-parameter decoder-only language model (`model_type = "
        f'"{model.config.model_type}"`) trained with argonne-kit.\n',
        "## Architecture\n",
        _table(("Component", "Specification"), architecture_rows(model, recipe.get("meta", {}).get("tokenizer"))),
    ]
    training = training_rows(recipe, records)
    if training:
        parts += ["## Training\n", _table(("Item", "Value"), training)]
    if plot is not None:
        parts.append(f"![training loss and learning rate]({plot.name})\n")
    parts += ["## How to load\n", _usage(name)]
    path = Path(directory) / "README.md"
    path.write_text("\n".join(parts))
    return path


def architecture_rows(model, tokenizer_name: str | None = None) -> list[tuple[str, str]]:
    """(component, specification) rows from the model's config; ``tokenizer_name`` is what the
    run recorded about its tokenizer."""
    cfg = model.config
    rows = [("Parameters", f"{_count(model):,} ({_params(model)})")]
    if cfg.model_type == "argonne":
        return rows + [
            ("Layers", f"{cfg.n_layer} transformer blocks"),
            ("Hidden size", f"{cfg.n_embd:,}"),
            ("Attention heads", f"{cfg.n_head} (multi-head)"),
            ("Feed-forward", f"GELU MLP, {4 * cfg.n_embd:,}"),
            ("Normalization", "LayerNorm (pre-norm)"),
            ("Position encoding", "learned absolute"),
            ("Context length", f"{cfg.block_size:,} tokens"),
            ("Vocabulary size", f"{cfg.vocab_size:,}"),
            ("Tied embeddings", "No"),
        ]
    windows = [w for w in cfg.layer_windows() if w]
    pattern = (
        f"interleaved local/global causal (window {windows[0]}, every other layer)"
        if windows
        else "full causal attention in every layer"
    )
    norms = ", ".join(
        n for n, on in (("QK-norm", cfg.qk_norm), ("V-norm", cfg.v_norm), ("sandwich norms", cfg.sandwich_norm)) if on
    )
    return rows + [
        ("Layers", f"{cfg.num_hidden_layers} transformer blocks"),
        ("Hidden size", f"{cfg.hidden_size:,}"),
        ("Attention heads", f"{cfg.num_attention_heads} query / {cfg.num_key_value_heads} key-value (GQA)"),
        ("Head dimension", str(cfg.head_dim)),
        ("Feed-forward", f"SwiGLU MLP, {cfg.intermediate_size:,} intermediate"),
        ("Attention pattern", pattern),
        ("Normalization", "RMSNorm" + (f" with {norms}" if norms else "")),
        ("Position encoding", f"RoPE (θ = {cfg.rope_theta:,.0f})"),
        ("Logit stabilization", f"final logit softcap = {cfg.softcap}" if cfg.softcap else "none"),
        ("Context length", f"{cfg.max_position_embeddings:,} tokens"),
        ("Vocabulary size", f"{cfg.vocab_size:,}" + (f" ({tokenizer_name})" if tokenizer_name else "")),
        ("Tied embeddings", "Yes (input ↔ output)" if cfg.tie_word_embeddings else "No"),
    ]


def training_rows(recipe: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(item, value) rows from a resolved recipe (as a dict) and the run's metric records."""
    if not recipe:
        return []
    rows: list[tuple[str, str]] = []
    objective = recipe.get("objective", {}).get("kind", "clm")
    init = recipe.get("init", {})
    stage = {
        "clm": "pretraining (causal LM)",
        "sft": "supervised fine-tuning",
        "dpo": "DPO",
        "cot": "chain-of-thought SFT",
    }.get(objective, objective)
    if init.get("from"):
        stage += f", initialised from `{init['from']}` (carry: {init.get('carry', 'weights')})"
    rows.append(("Stage", stage))
    data = recipe.get("data", {})
    rows.append(("Data", f"{data.get('kind', '?')}" + (f" `{data['path']}`" if data.get("path") else "")))
    train, derived = recipe.get("train", {}), recipe.get("derived", {})
    steps = [r for r in records if "loss" in r]
    if steps:
        rows.append(("Optimizer steps", f"{steps[-1]['step']:,}"))
        if "tokens" in steps[-1]:
            rows.append(("Tokens processed", f"{steps[-1]['tokens']:,}"))
    per_step = derived.get("train", {}).get("tokens_per_step")
    if per_step:
        rows.append(
            (
                "Tokens per step",
                f"{per_step:,} ({train.get('micro_batch_size')} rows × "
                f"{train.get('seq_len')} tokens × {derived['train'].get('dp_world_assumed', 1)}"
                f" ranks × {derived['train'].get('grad_accum_steps', 1)} accumulation)",
            )
        )
    rows.append(("Sequence length", f"{train.get('seq_len', '?'):,}" if train.get("seq_len") else "?"))
    rows.append(("LR schedule", _schedule(recipe)))
    optim = recipe.get("optim", {})
    if optim:
        rows.append(
            (
                "Optimizer",
                f"AdamW (β = {tuple(optim.get('betas', ()))}, weight decay {optim.get('weight_decay')}),"
                f" grad clip {optim.get('grad_clip')}",
            )
        )
    rows.append(
        (
            "Precision",
            str(train.get("precision", "?"))
            + (", torch.compile" if train.get("compile") else "")
            + (", activation checkpointing" if train.get("activation_checkpointing") else ""),
        )
    )
    meta = recipe.get("meta", {})
    parallel = recipe.get("parallel", {}).get("kind", "single")
    rows.append(
        (
            "Hardware",
            f"{meta.get('world_size', 1)} process(es), {parallel} strategy, device {train.get('device', 'auto')}",
        )
    )
    if steps:
        rows.append(("Final train loss", f"{steps[-1]['loss']:.4f} (step {steps[-1]['step']:,})"))
    val = [r for r in records if "val_loss" in r]
    if val:
        rows.append(("Final validation loss", f"{val[-1]['val_loss']:.4f} (step {val[-1]['step']:,})"))
    if meta.get("argonne_kit"):
        rows.append(("Trained with", f"argonne-kit {meta['argonne_kit']}, torch {meta.get('torch', '?')}"))
    return rows


def _schedule(recipe: dict[str, Any]) -> str:
    schedule = recipe.get("schedule", {})
    lr = recipe.get("optim", {}).get("lr")
    landmarks = recipe.get("derived", {}).get("schedule", {})
    text = f"{schedule.get('kind', '?')}, peak {lr:g}" if lr is not None else str(schedule.get("kind", "?"))
    details = [f"{k.replace('_', ' ')} {v}" for k, v in schedule.items() if k != "kind" and v is not None]
    if details:
        text += " (" + ", ".join(details) + ")"
    if "lr_last" in landmarks:
        text += f"; last step LR {landmarks['lr_last']:.3g}"
    return text


def _metrics(run_dir: Path | None, up_to_step: int | None) -> list[dict[str, Any]]:
    from argonne_kit.train.metrics import METRICS_FILE, read_metrics

    if run_dir is None or not (Path(run_dir) / METRICS_FILE).is_file():
        return []
    return [r for r in read_metrics(Path(run_dir)) if up_to_step is None or r.get("step", 0) <= up_to_step]


def _plot(run_dir: Path, directory: Path, up_to_step: int | None) -> Path | None:
    from argonne_kit.cli.plot import write_loss_plot
    from argonne_kit.errors import ArgonneError

    try:
        return write_loss_plot(run_dir, Path(directory) / LOSS_PLOT, up_to_step=up_to_step)
    except ArgonneError:  # no matplotlib, or no training records: the card goes without the plot
        return None


def _front_matter(recipe: dict[str, Any]) -> str:
    tags = ["argonne-kit", "causal-lm"]
    if recipe.get("objective") and _trains_a_chat_model(recipe["objective"]):
        tags.append("chat")
    return (
        "---\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n"
        + "".join(f"- {t}\n" for t in tags)
        + "---\n"
    )


def _trains_a_chat_model(section: dict[str, Any]) -> bool:
    """The objective's own answer (``Objective.chat_model``); False for an objective whose plugin
    is not installed here (a card written away from the training environment)."""
    from argonne_kit.recipe.convert import structure
    from argonne_kit.registry import get_registry

    registry, kind = get_registry(), section.get("kind", "clm")
    if not registry.has("objective", kind):
        return False
    component = registry.get("objective", kind)
    config = structure({k: v for k, v in section.items() if k != "kind"}, component.config_cls, "objective")
    return bool(component.factory(config).chat_model)


def _usage(name: str) -> str:
    return (
        "The repository carries its own modeling code (`auto_map` in `config.json`):\n\n"
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'model = AutoModelForCausalLM.from_pretrained("{name}", trust_remote_code=True)\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{name}")\n'
        'ids = tokenizer("Once upon a time", return_tensors="pt").input_ids\n'
        "print(tokenizer.decode(model.generate(ids, max_new_tokens=32)[0]))\n```\n\n"
        f'or with argonne-kit installed: `argonne-kit generate {name} --prompt "Once upon a time"`.\n'
    )


def _table(header: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {a} | {str(b).replace('|', '/')} |" for a, b in rows]
    return "\n".join(lines) + "\n"


def _count(model) -> int:
    seen, total = set(), 0
    for param in model.parameters():  # a tied weight counts once
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


def _params(model) -> str:
    n = _count(model)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)
