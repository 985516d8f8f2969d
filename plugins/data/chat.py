"""Chat-example sources: ``ultrachat`` (SFT), ``cot`` (reasoning SFT) and ``preference`` (DPO pairs).

Rows are read once at start-up (JSONL, JSON lists or parquet; the UltraChat-200k layout of
``prompt`` + ``messages``), checked, and every dropped row is counted by source and reason with
the file and row of the first one; the run stops when more than ``max_drop_frac`` is dropped
(D-6: rows are never silently replaced). Each epoch visits the kept rows in a seeded order
(D-7); rank ``r`` takes every ``world``-th row, so a preference pair stays on one rank.

Examples are tokenized by ``num_workers`` processes (or inline) in a fixed order and batched in
the training process: right-padded to ``seq_len`` (or the longest row) with an attention mask, or
packed several to a row with ``segment_ids`` and ``position_ids`` that restart per example.
Labels are aligned with ``input_ids`` (the objective shifts) and −100 outside supervised spans.
The position (next row, an example waiting for the next packed row, the drop counts) is per rank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch

from argonne_kit.contracts.data import DataContext, DataSize, DataSource
from argonne_kit.data.order import Permutation, derive_seed, ordered_map
from argonne_kit.data.tokenizer import tokenizer_hash
from argonne_kit.errors import DataError

from . import conversation as conv
from .common import DropLog, check_state, digest, log, resolve_path
from .configs import ChatConfig, CotConfig, PreferenceConfig

IGNORE = -100

#: Named chat templates for ``chat_template``. ``argonne1``: Argonne-1.0-Instruct's
#: ``USER: …\n\nASSISTANT: …\n\n`` rendering; each reply ends with the tokenizer's EOS so a
#: model trained on it learns to stop (the original taught no stop token, D-5).
CHAT_TEMPLATES: dict[str, str] = {
    "argonne1": (
        "{% for m in messages %}"
        "{% if m['role'] == 'user' %}USER: {{ m['content'] }}\n\n"
        "{% elif m['role'] == 'assistant' %}ASSISTANT: {{ m['content'] }}{{ eos_token }}\n\n"
        "{% else %}{{ m['content'] }}\n\n{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
    ),
}


# -- row preparation (per source kind) ----------------------------------------------------------
class _ChatRows:
    def __init__(self, config: ChatConfig):
        self.config = config

    def source_of(self, row: Any, file: Path) -> str:
        return file.name

    def prepare(self, row: Any) -> Any:
        messages = conv.chat_messages(row, self.config.messages_column, self.config.prompt_column)
        return conv.with_think_scaffold(messages) if self.config.think_scaffold else messages


class _CotRows(_ChatRows):
    config: CotConfig

    def source_of(self, row: Any, file: Path) -> str:
        column = self.config.source_column
        if column and isinstance(row, dict) and row.get(column) is not None:
            return str(row[column])
        return file.name

    def prepare(self, row: Any) -> Any:
        messages = conv.chat_messages(row, self.config.messages_column, self.config.prompt_column)
        answer = messages[-1]["content"]
        match = conv.THINK_BLOCK.search(answer)
        if match is None:
            if not self.config.allow_non_reasoning:
                raise conv.Drop("no think block in the final answer")
            return messages
        if not self.config.preserve_raw_reasoning:
            reasoning = "\n".join(line.strip() for line in match.group(1).strip().splitlines() if line.strip())
            final = answer[match.end() :].strip()
            if not reasoning or not final:
                raise conv.Drop("empty reasoning or answer")
            answer = f"<think>\n{reasoning}\n</think>\n\n**Answer:** {final}"
        return messages[:-1] + [{"role": "assistant", "content": answer}]


class _PreferenceRows:
    def __init__(self, config: PreferenceConfig):
        self.config = config

    def source_of(self, row: Any, file: Path) -> str:
        return file.name

    def prepare(self, row: Any) -> Any:
        context, chosen, rejected = conv.preference_pair(row, self.config.prompt_column)
        if self.config.think_scaffold:
            chosen, rejected = (a if "<think>" in a else conv.THINK_SCAFFOLD + a for a in (chosen, rejected))
        return context, chosen, rejected


# -- per-example work (picklable; runs in DataLoader workers) -----------------------------------
class _Encoder:
    def __init__(
        self,
        records: list[Any],
        where: list[str],
        tokenizer: Any,
        kind: str,
        *,
        all_assistant: bool,
        max_len: int,
        kwargs: dict[str, Any],
        max_think_tokens: int | None,
        per_rank: int,
        rank: int,
        world: int,
        seed: int,
        shuffle: bool,
    ):
        self.records, self.where, self.tokenizer, self.kind = records, where, tokenizer, kind
        self.all_assistant, self.max_len, self.kwargs = all_assistant, max_len, kwargs
        self.max_think_tokens = max_think_tokens
        self.per_rank, self.rank, self.world, self.seed, self.shuffle = per_rank, rank, world, seed, shuffle

    def index(self, unit: int) -> int:
        epoch, k = divmod(unit, self.per_rank)
        position = k * self.world + self.rank
        if self.shuffle:
            position = Permutation(len(self.records), derive_seed(self.seed, "chat", epoch))(position)
        return position

    def _cut_think(self, messages):
        answer = messages[-1]["content"]
        match = conv.THINK_BLOCK.search(answer)
        if match is None:
            return messages, False
        ids = self.tokenizer(match.group(1), add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_think_tokens:
            return messages, False
        cut = self.tokenizer.decode(ids[: self.max_think_tokens])
        answer = answer[: match.start(1)] + cut + answer[match.end(1) :]
        return messages[:-1] + [{"role": "assistant", "content": answer}], True

    def __call__(self, unit: int) -> tuple[str, Any, int]:
        index = self.index(unit)
        record = self.records[index]
        if self.kind == "preference":
            context, chosen, rejected = record
            for candidate in conv.truncations(context + [{"role": "assistant", "content": chosen}]):
                head = candidate[:-1]
                pair = [
                    conv.tokenize_spans(
                        self.tokenizer, head + [{"role": "assistant", "content": answer}], [len(head)], self.kwargs
                    )
                    for answer in (chosen, rejected)
                ]
                if all(len(ids) <= self.max_len for ids, _ in pair):
                    return "ok", pair, index
            return "over-long", None, index
        truncated_think = False
        if self.max_think_tokens is not None:
            record, truncated_think = self._cut_think(record)
        encoded = conv.encode_conversation(
            self.tokenizer, record, all_assistant=self.all_assistant, max_len=self.max_len, kwargs=self.kwargs
        )
        if encoded is None:
            return "over-long", None, index
        return ("ok-think-truncated" if truncated_think else "ok"), encoded, index


# -- the sources --------------------------------------------------------------------------------
class ChatExampleSource(DataSource):
    """Shared machinery of the chat sources; see the module docstring."""

    def __init__(self, name: str, config: Any, ctx: DataContext, rows: Any, default_path: str):
        if ctx.tokenizer is None:
            raise DataError(f"{name}: needs the run's tokenizer (DataContext.tokenizer is None)")
        if getattr(config, "chat_template", None):
            ctx.tokenizer.chat_template = CHAT_TEMPLATES.get(config.chat_template, config.chat_template)
        if getattr(ctx.tokenizer, "chat_template", None) is None:
            raise DataError(f"{name}: tokenizer {ctx.tokenizer.name_or_path} has no chat template")
        self.name, self.config, self.ctx = name, config, ctx
        self.kind = "preference" if isinstance(rows, _PreferenceRows) else "chat"
        if config.path is None:
            from argonne_kit.data.embedded import ensure_quickstart_assets

            root = getattr(ensure_quickstart_assets(), default_path)
        else:
            root = resolve_path(config.path, ctx.recipe_dir)
        self.files = conv.list_row_files(Path(root))
        self.drops = DropLog(name, config.max_drop_frac)
        records, where = [], []
        for file in self.files:
            for number, row in conv.iter_rows(file):
                source = rows.source_of(row, file)
                self.drops.saw(source)
                try:
                    records.append(rows.prepare(row))
                    where.append(f"{file}:row {number}")
                except conv.Drop as drop:
                    self.drops.drop(source, drop.reason, f"{file} row {number}")
        self.rows_total = sum(self.drops.seen.values())
        if self.drops.dropped:
            log.warning("%s", self.drops.summary())
        self.drops.check()
        self.per_rank = len(records) // ctx.dp_world
        if self.per_rank == 0:
            raise DataError(f"{root}: {len(records)} usable rows cannot feed {ctx.dp_world} ranks")
        self.pad_id = (
            ctx.tokenizer.pad_token_id if ctx.tokenizer.pad_token_id is not None else ctx.tokenizer.eos_token_id
        )
        if self.pad_id is None:
            raise DataError(f"{name}: tokenizer {ctx.tokenizer.name_or_path} has neither a pad nor an EOS token")
        kwargs = dict(config.chat_template_kwargs or {})
        self.packing = getattr(config, "packing", False)
        self.work = _Encoder(
            records,
            where,
            ctx.tokenizer,
            self.kind,
            all_assistant=getattr(config, "mask", "last_assistant") == "all_assistant",
            max_len=ctx.seq_len,
            kwargs=kwargs,
            max_think_tokens=getattr(config, "max_think_tokens", None),
            per_rank=self.per_rank,
            rank=ctx.dp_rank,
            world=ctx.dp_world,
            seed=ctx.seed,
            shuffle=config.shuffle,
        )
        self.num_records = len(records)
        self._fingerprint = digest(
            name,
            [(f.name, f.stat().st_size) for f in self.files],
            attrs.asdict(config),
            tokenizer_hash(ctx.tokenizer),
            ctx.tokenizer.chat_template,
            ctx.seq_len,
            ctx.seed,
        )
        self.next_unit = 0
        self.pending: list[Any] = []
        self.think_truncated = 0
        self.overlong = 0
        self.first_overlong: str | None = None

    # iteration ---------------------------------------------------------------------------
    def __iter__(self):
        units = ordered_map(self.work, self.next_unit, self.config.num_workers)
        while True:
            batch = self._take_batch(units)
            yield batch

    def _next_example(self, units) -> Any:
        while True:
            status, example, index = next(units)
            self.next_unit += 1
            if status.startswith("ok"):
                self.think_truncated += status == "ok-think-truncated"
                return example
            # Over-long: counted per visit (an over-long row is over-long in every epoch).
            self.overlong += 1
            if self.first_overlong is None:
                self.first_overlong = self.work.where[index]
                log.warning(
                    "%s: %s does not fit seq_len %d even with only its last user turn; skipped and counted",
                    self.name,
                    self.first_overlong,
                    self.ctx.seq_len,
                )
            if self.next_unit >= min(100, self.per_rank) and self.overlong / self.next_unit > self.config.max_drop_frac:
                raise DataError(
                    f"{self.name}: {self.overlong:,} of {self.next_unit:,} examples read on rank "
                    f"{self.ctx.dp_rank} are longer than seq_len {self.ctx.seq_len} (first: "
                    f"{self.first_overlong}); above max_drop_frac = {self.config.max_drop_frac}"
                )

    def _take_batch(self, units) -> dict[str, torch.Tensor]:
        B, T = self.ctx.micro_batch_size, self.ctx.seq_len
        if self.kind == "preference":
            pairs = [self._next_example(units) for _ in range(B)]
            return self._pad_pairs(pairs)
        if not self.packing:
            return self._pad([self._next_example(units) for _ in range(B)])
        rows: list[list[Any]] = [[]]
        used = 0
        while True:
            example = self.pending.pop() if self.pending else self._next_example(units)
            if used + len(example[0]) > T:
                if len(rows) == B:
                    self.pending.append(example)
                    return self._pack(rows)
                rows.append([])
                used = 0
            rows[-1].append(example)
            used += len(example[0])

    # collation ---------------------------------------------------------------------------
    def _width(self, lengths: list[int]) -> int:
        return self.ctx.seq_len if self.config.pad_to == "seq_len" else max(lengths)

    def _pad(self, examples: list[tuple[list[int], list[int]]], width: int | None = None) -> dict[str, torch.Tensor]:
        width = width or self._width([len(ids) for ids, _ in examples])
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, (example_ids, example_labels) in enumerate(examples):
            n = len(example_ids)
            ids[row, :n] = torch.tensor(example_ids)
            labels[row, :n] = torch.tensor(example_labels)
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    def _pad_pairs(self, pairs: list[list[tuple[list[int], list[int]]]]) -> dict[str, torch.Tensor]:
        width = self._width([len(ids) for pair in pairs for ids, _ in pair])
        out = {}
        for side, name in ((0, "chosen"), (1, "rejected")):
            for key, value in self._pad([pair[side] for pair in pairs], width).items():
                out[f"{name}_{key}"] = value
        return out

    def _pack(self, rows: list[list[tuple[list[int], list[int]]]]) -> dict[str, torch.Tensor]:
        T = self.ctx.seq_len
        shape = (len(rows), T)
        ids = torch.full(shape, self.pad_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE, dtype=torch.long)
        mask = torch.zeros(shape, dtype=torch.long)
        segments = torch.zeros(shape, dtype=torch.long)
        positions = torch.zeros(shape, dtype=torch.long)
        for r, examples in enumerate(rows):
            at = 0
            for s, (example_ids, example_labels) in enumerate(examples, start=1):
                n = len(example_ids)
                ids[r, at : at + n] = torch.tensor(example_ids)
                labels[r, at : at + n] = torch.tensor(example_labels)
                labels[r, at] = IGNORE  # nothing in this example predicts its first token
                mask[r, at : at + n] = 1
                segments[r, at : at + n] = s
                positions[r, at : at + n] = torch.arange(n)
                at += n
        return {
            "input_ids": ids,
            "labels": labels,
            "attention_mask": mask,
            "segment_ids": segments,
            "position_ids": positions,
        }

    # state -------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.next_unit // self.per_rank

    def state_dict(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "fingerprint": self._fingerprint,
            "dp_rank": self.ctx.dp_rank,
            "dp_world": self.ctx.dp_world,
            "micro_batch_size": self.ctx.micro_batch_size,
            "next_unit": self.next_unit,
            "pending": [list(map(list, e)) for e in self.pending],
            "think_truncated": self.think_truncated,
            "overlong": self.overlong,
            "first_overlong": self.first_overlong,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state(self.name, state, self._fingerprint, self.ctx)
        self.next_unit = int(state["next_unit"])
        self.pending = [tuple(e) for e in state["pending"]]
        self.think_truncated = int(state["think_truncated"])
        self.overlong, self.first_overlong = int(state["overlong"]), state["first_overlong"]

    def size(self) -> DataSize:
        return DataSize(tokens=None, examples=self.per_rank * self.ctx.dp_world)

    def fingerprint(self) -> str:
        return self._fingerprint

    def stats(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "examples_read": self.next_unit,
            "overlong_skipped": self.overlong,
            "think_truncated": self.think_truncated,
            **self.drops.as_stats(),
        }


def make_ultrachat(config: ChatConfig, ctx: DataContext) -> ChatExampleSource:
    return ChatExampleSource("ultrachat", config, ctx, _ChatRows(config), "chat_jsonl")


def make_cot(config: CotConfig, ctx: DataContext) -> ChatExampleSource:
    return ChatExampleSource("cot", config, ctx, _CotRows(config), "cot_jsonl")


def make_preference(config: PreferenceConfig, ctx: DataContext) -> ChatExampleSource:
    return ChatExampleSource("preference", config, ctx, _PreferenceRows(config), "preference_jsonl")
