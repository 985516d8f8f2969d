"""Config classes of the built-in data sources.

Torch-free on purpose: resolving a recipe structures ``[data]`` (and ``[val_data]``, and each
``[[data.sources]]`` table of a mixture) into these without importing the sources' modules, which
import torch; the package registers factories that import those only when a source is built.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from argonne_kit.contracts.config import ComponentConfig, DataConfig
from argonne_kit.errors import DataError
from argonne_kit.recipe.validators import fraction, non_negative, positive

from .common import resolve_path


@attrs.define(kw_only=True)
class BinShardsConfig(DataConfig):
    """Token windows from shards written by ``argonne-kit preprocess`` (or llm.c / the original)."""

    path: str | None = None
    """Shard directory (with manifest.json, or just ``*.bin``), one ``.bin`` file, or an original
    doc-manifest ``.json``; relative to the recipe. None = the embedded quickstart corpus,
    preprocessed into the cache on first use."""
    split: Literal["train", "validation"] = "train"
    """With ``path = None``: which split of the embedded corpus."""
    mode: Literal["packed", "document"] = "packed"
    """packed = windows across documents with EOS separators; document = one window inside one document."""
    shuffle: bool = False
    """Visit windows (documents) in a seeded pseudo-random order, a new one every epoch."""
    num_workers: int = attrs.field(default=0, validator=non_negative)
    """DataLoader worker processes assembling batches (0 = in the training process; the order is
    the same for any value)."""

    def planned_tokens(self, recipe_dir: str) -> int | None:
        """The tokens in the shards' manifest when ``path`` names shards on disk."""
        if self.path is None:
            return None
        from argonne_kit.data.manifest import find_shards  # numpy; only when planning

        location = resolve_path(self.path, recipe_dir)

        try:
            return sum(s.num_tokens for s in find_shards(location).shards)
        except (OSError, DataError):
            return None


@attrs.define(kw_only=True)
class FineWebParquetConfig(ComponentConfig):
    """Parquet text (FineWeb schema) tokenized while training."""

    path: str | None = None
    """Directory of ``*.parquet`` (searched recursively) or one file; relative to the recipe.
    None = the embedded quickstart corpus."""
    split: Literal["train", "validation"] = "train"
    """With ``path = None``: which split of the embedded corpus."""
    text_column: str = "text"
    """Column holding the document text."""
    shuffle: bool = False
    """Visit chunks, and documents within a chunk, in a seeded order that changes every epoch."""
    chunk_rows: int = attrs.field(default=256, validator=positive)
    """Documents per unit of tokenization work (and of shuffling)."""
    append_eos: bool = True
    """Follow each document with the tokenizer's EOS token (the original's convention)."""
    num_workers: int = attrs.field(default=0, validator=non_negative)
    """Tokenizer worker processes (0 = in the training process; the batches are the same for any value)."""


@attrs.define(kw_only=True)
class ChatConfig(ComponentConfig):
    """Chat examples for supervised fine-tuning (UltraChat-200k layout)."""

    path: str | None = None
    """A ``.jsonl``/``.json``/``.parquet`` file or a directory of them; relative to the recipe.
    None = the embedded quickstart chat sample."""
    messages_column: str = "messages"
    """Column with the list of ``{role, content}`` messages."""
    prompt_column: str | None = "prompt"
    """Column whose text becomes the first user turn when the messages do not start with one."""
    mask: Literal["last_assistant", "all_assistant"] = "last_assistant"
    """Supervise only the last assistant turn (the original SFT) or every assistant turn."""
    think_scaffold: bool = False
    """Prefix the target with an empty ``<think>`` block unless it has one (the original's
    always-think contract)."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Extra variables for the chat template (e.g. ``{enable_thinking = true}``)."""
    chat_template: str | None = None
    """Replace the tokenizer's chat template (it is saved with the exported model): a named
    template from ``chat.CHAT_TEMPLATES`` (``argonne1`` = the 1.0-Instruct ``USER: …`` format) or a
    Jinja template string. None = the tokenizer's own."""
    packing: bool = False
    """Pack several examples per row (with segment_ids/position_ids) instead of one per row."""
    pad_to: Literal["seq_len", "longest"] = "seq_len"
    """Unpacked rows: pad to seq_len (fixed shapes) or to the longest row of the batch."""
    shuffle: bool = True
    """Visit the rows in a seeded order that changes every epoch."""
    max_drop_frac: float = attrs.field(default=0.05, validator=fraction)
    """Stop when more than this fraction of rows (of any source file) is dropped."""
    num_workers: int = attrs.field(default=0, validator=non_negative)
    """Tokenizer worker processes (0 = in the training process; batches are the same for any value)."""


@attrs.define(kw_only=True)
class CotConfig(ChatConfig):
    """Reasoning examples whose final assistant turn carries ``<think>…</think>``. Every
    transform is off by default (D-6)."""

    chat_template_kwargs: dict[str, Any] | None = attrs.field(factory=lambda: {"enable_thinking": True})
    """Extra variables for the chat template; ``enable_thinking`` keeps Qwen3's template from
    injecting an empty think block."""
    max_drop_frac: float = attrs.field(default=0.10, validator=fraction)
    """Stop when more than this fraction of rows (of any source) is dropped (the original's audit)."""
    allow_non_reasoning: bool = False
    """Keep rows whose final answer has no think block (otherwise dropped and counted)."""
    max_think_tokens: int | None = attrs.field(default=None, validator=non_negative)
    """Truncate the think span to this many tokens (None = keep it whole; the original's 128 cut
    a third of the reasoning, D-6)."""
    preserve_raw_reasoning: bool = True
    """False = rewrite the target as ``<think>\\n{reasoning}\\n</think>\\n\\n**Answer:** {answer}``
    with whitespace normalised (the original's canonical form)."""
    source_column: str | None = None
    """Column naming each row's source (tier); drop counts are reported per value (default: per file)."""


@attrs.define(kw_only=True)
class PreferenceConfig(ComponentConfig):
    """Chosen/rejected pairs for DPO (original.md §3.6 formats)."""

    path: str | None = None
    """A ``.jsonl``/``.json``/``.parquet`` file or a directory of them; relative to the recipe.
    None = the embedded quickstart preference sample."""
    prompt_column: str = "prompt"
    """Column with the prompt when chosen/rejected hold only answers."""
    think_scaffold: bool = False
    """Prefix both answers with an empty ``<think>`` block unless they have one."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Extra variables for the chat template."""
    pad_to: Literal["seq_len", "longest"] = "seq_len"
    """Pad rows to seq_len or to the longest of the batch (chosen and rejected together)."""
    shuffle: bool = True
    """Visit the pairs in a seeded order that changes every epoch."""
    max_drop_frac: float = attrs.field(default=0.05, validator=fraction)
    """Stop when more than this fraction of rows is dropped."""
    num_workers: int = attrs.field(default=0, validator=non_negative)
    """Tokenizer worker processes (0 = in the training process)."""


_ENTRY_KEYS = ("kind", "weight", "name")


@attrs.frozen
class MixtureEntry:
    """One structured sub-source."""

    kind: str
    weight: float
    name: str
    config: Any


def _structure_entries(sources: list[dict[str, Any]]) -> list[MixtureEntry]:
    from argonne_kit.recipe.convert import FieldError, structure
    from argonne_kit.registry import get_registry

    registry = get_registry()
    entries = []
    for i, table in enumerate(sources):
        where = f"sources[{i}]"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: expected a table with kind and weight")
        kind, weight = table.get("kind"), table.get("weight")
        if not isinstance(kind, str):
            raise ValueError(
                f"{where}.kind: required, one of {', '.join(n for n in registry.names('data') if n != 'mixture')}"
            )
        if kind == "mixture":
            raise ValueError(f"{where}.kind: a mixture cannot contain a mixture")
        if not registry.has("data", kind):
            from argonne_kit.errors import suggest

            raise ValueError(f"{where}.kind: no data source named {kind!r}{suggest(kind, registry.names('data'))}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ValueError(f"{where}.weight: expected a number > 0, got {weight!r}")
        name = table.get("name", f"{kind}{i}")
        if not isinstance(name, str):
            raise ValueError(f"{where}.name: expected str, got {name!r}")
        rest = {k: v for k, v in table.items() if k not in _ENTRY_KEYS}
        try:
            config = structure(rest, registry.get("data", kind).config_cls, where)
        except FieldError as exc:
            raise ValueError(f"{exc.path}: {exc.message}") from None
        entries.append(MixtureEntry(kind, float(weight), name, config))
    if not entries:
        raise ValueError("sources: a mixture needs at least one [[data.sources]] table")
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"sources: names must be unique, got {names}")
    return entries


@attrs.define(kw_only=True, slots=False)
class MixtureConfig(ComponentConfig):
    """Weighted sources drawn per batch, rank-synchronously."""

    sources: list[dict[str, Any]] = attrs.field(factory=list)
    """``[[data.sources]]`` tables: ``kind`` (a registered data source), ``weight`` (> 0), optional
    ``name``, and that source's own keys."""
    total_tokens: int | None = None
    """Tokens of one pass over the mixture (for the step count); None = the sum of the sources' sizes."""

    def __attrs_post_init__(self) -> None:
        # The structured sources; a plain attribute (slots=False), not a recipe key.
        self.entries = _structure_entries(self.sources)
        # Write every sub-source back with its defaults explicit, like every other section.
        from argonne_kit.recipe.convert import unstructure

        self.sources = [
            {"kind": e.kind, "weight": e.weight, "name": e.name, **unstructure(e.config)} for e in self.entries
        ]
