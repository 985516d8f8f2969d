"""Chat rows → messages, and messages → token ids with labels (original.md §3.5, original.md §3.6).

Example construction follows the original SFT: the conversation is rendered with the
tokenizer's own chat template; labels are −100 except on the supervised assistant turns (the
last one, or all of them), whose span includes the closing end-of-turn token; when too long, the
oldest turns are dropped while at least one user turn stays before the target, else the example
is over-long. Each text piece is tokenized on its own, split exactly at the span boundaries, and
the template must render a conversation as the extension of its prefix (checked).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from argonne_kit.errors import DataError

ROLES = ("system", "user", "assistant")
THINK_SCAFFOLD = "<think>\n\n</think>\n\n"
THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class Drop(Exception):
    """A row that is skipped (and counted) for ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- reading rows -------------------------------------------------------------------------------
def list_row_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"{root}: no such file or directory")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet"))
    if not files:
        raise DataError(f"{root}: no *.jsonl, *.json or *.parquet files")
    return files


def iter_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(row number, row)`` of a JSONL, JSON-list or parquet file; a malformed line is a
    :class:`DataError` naming the file and row."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
            row = 0
            for batch in parquet.iter_batches(batch_size=1024):
                for value in batch.to_pylist():
                    yield row, value
                    row += 1
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{path}: not a readable parquet file: {exc}") from None
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(rows, list):
            raise DataError(f"{path}: a .json data file must hold a list of rows")
        yield from enumerate(rows)
        return
    for number, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}: row {number} (line {number + 1}): not valid JSON: {exc}") from None


# -- rows → messages ----------------------------------------------------------------------------
def normalize_messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise Drop("no messages")
    out = []
    for message in value:
        if not isinstance(message, dict):
            raise Drop("malformed message")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise Drop("unknown role")
        if not isinstance(content, str) or not content.strip():
            raise Drop("empty turn")
        out.append({"role": role, "content": content})
    return out


def chat_messages(row: Any, messages_column: str, prompt_column: str | None) -> list[dict[str, str]]:
    """The conversation of an UltraChat-layout row, ending at its last assistant turn; the
    ``prompt`` column becomes the first user turn when the messages do not start with one."""
    if not isinstance(row, dict):
        raise Drop("row is not an object")
    messages = normalize_messages(row.get(messages_column))
    prompt = row.get(prompt_column) if prompt_column else None
    first = next((m for m in messages if m["role"] != "system"), None)
    if isinstance(prompt, str) and prompt.strip() and (first is None or first["role"] != "user"):
        at = next(i for i, m in enumerate(messages + [{"role": ""}]) if m["role"] != "system")
        messages.insert(at, {"role": "user", "content": prompt})
    return trim_to_last_assistant(messages)


def trim_to_last_assistant(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not any(m["role"] == "user" for m in messages):
        raise Drop("no user turn")
    if not assistants:
        raise Drop("no assistant turn")
    messages = messages[: assistants[-1] + 1]
    if not any(m["role"] == "user" for m in messages):
        raise Drop("no user turn before the answer")
    return messages


_CHATML = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL)
_ANTHROPIC = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]*")
_USER_BOT = re.compile(r"(?:^|\n)[ \t]*(user|bot|assistant):[ \t]*", re.IGNORECASE)


def parse_transcript(text: str) -> list[dict[str, str]] | None:
    """Messages of a ChatML, Anthropic (``Human:``/``Assistant:``) or ``user:``/``bot:`` transcript;
    None when ``text`` is a plain answer."""
    if "<|im_start|>" in text:
        return [{"role": r, "content": c.strip()} for r, c in _CHATML.findall(text)]
    for pattern, roles in (
        (_ANTHROPIC, {"human": "user", "assistant": "assistant"}),
        (_USER_BOT, {"user": "user", "bot": "assistant", "assistant": "assistant"}),
    ):
        parts = pattern.split(text)
        if len(parts) >= 3 and sum(1 for p in parts[1::2] if p.lower() in roles) >= 2:
            return [{"role": roles[r.lower()], "content": c.strip()} for r, c in zip(parts[1::2], parts[2::2])]
    return None


def _as_messages(value: Any) -> list[dict[str, str]] | None:
    if isinstance(value, list):
        return normalize_messages(value)
    if isinstance(value, str) and value.strip():
        return parse_transcript(value)
    return None


def preference_pair(row: Any, prompt_column: str = "prompt") -> tuple[list[dict[str, str]], str, str]:
    """``(context, chosen answer, rejected answer)`` from the formats of original.md §3.6: chosen/rejected
    message lists; a prompt with chosen/rejected strings; Anthropic, ``user:/bot:`` or ChatML
    transcripts; binarized-arena rows (``conversation_a``/``conversation_b`` + ``winner``)."""
    if not isinstance(row, dict):
        raise Drop("row is not an object")
    if "conversation_a" in row and "winner" in row:
        winner = row["winner"]
        if winner not in ("model_a", "model_b"):
            raise Drop("no winner (tie)")
        a, b = row["conversation_a"], row["conversation_b"]
        row = {"chosen": a if winner == "model_a" else b, "rejected": b if winner == "model_a" else a}
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if rejected is None or rejected == "" or rejected == []:
        raise Drop("no rejected answer")
    if chosen is None or chosen == "" or chosen == []:
        raise Drop("no chosen answer")
    chosen_messages, rejected_messages = _as_messages(chosen), _as_messages(rejected)
    prompt = row.get(prompt_column)
    prompt_messages = (
        _as_messages(prompt)
        if not isinstance(prompt, str) or parse_transcript(prompt)
        else ([{"role": "user", "content": prompt}] if prompt.strip() else None)
    )

    def split(messages, text):
        if messages is None:
            if not isinstance(text, str):
                raise Drop("malformed answer")
            return None, text
        if messages[-1]["role"] != "assistant":
            raise Drop("answer does not end with an assistant turn")
        return messages[:-1] or None, messages[-1]["content"]

    chosen_context, chosen_text = split(chosen_messages, chosen)
    rejected_context, rejected_text = split(rejected_messages, rejected)
    if chosen_context and rejected_context and chosen_context != rejected_context:
        raise Drop("chosen and rejected prompts differ")
    context = chosen_context or rejected_context or prompt_messages
    if not context:
        raise Drop("no prompt")
    context = normalize_messages(context)
    if not any(m["role"] == "user" for m in context):
        raise Drop("no user turn")
    if not chosen_text.strip() or not rejected_text.strip():
        raise Drop("empty turn")
    return context, chosen_text, rejected_text


# -- messages → ids and labels ------------------------------------------------------------------
def render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool, kwargs: dict[str, Any]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt, **kwargs)


def truncations(messages: list[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    """The conversation, then with the oldest turns dropped one exchange at a time (system turns
    kept), as long as a user turn remains before the last turn."""
    system = messages[:1] if messages[0]["role"] == "system" else []
    rest = messages[len(system) :]
    while rest and any(m["role"] == "user" for m in rest[:-1]):
        yield system + rest
        rest = rest[1:]
        while rest and rest[0]["role"] != "user":
            rest = rest[1:]


def tokenize_spans(
    tokenizer: Any, messages: list[dict[str, str]], supervised: list[int], kwargs: dict[str, Any]
) -> tuple[list[int], list[int]]:
    """``(ids, labels)`` with labels on the rendered spans of the ``supervised`` turns."""
    full = render(tokenizer, messages, False, kwargs)
    cuts = []
    for index in supervised:
        before = render(tokenizer, messages[:index], True, kwargs)
        through = render(tokenizer, messages[: index + 1], False, kwargs)
        if not (full.startswith(before) and full.startswith(through) and len(before) <= len(through)):
            raise DataError(
                "the chat template does not render a conversation as an extension of its prefix; "
                'use mask = "last_assistant" or a prefix-stable template'
            )
        # The supervised span ends at the turn's closing token (e.g. ``<|im_end|>``): the
        # template's separator after it (``"\n"``) is context, not something the model is taught.
        cuts.append((len(before), len(through.rstrip())))
    ids: list[int] = []
    labels: list[int] = []
    position = 0
    for start, end in cuts + [(len(full), len(full))]:
        for text, supervise in ((full[position:start], False), (full[start:end], True)):
            if text:
                piece = tokenizer(text, add_special_tokens=False)["input_ids"]
                ids.extend(piece)
                labels.extend(piece if supervise else [-100] * len(piece))
        position = end
    return ids, labels


def encode_conversation(
    tokenizer: Any, messages: list[dict[str, str]], *, all_assistant: bool, max_len: int, kwargs: dict[str, Any]
) -> tuple[list[int], list[int]] | None:
    """The longest truncation of ``messages`` that fits ``max_len`` tokens, or None (over-long)."""
    for candidate in truncations(messages):
        last = len(candidate) - 1
        supervised = [i for i, m in enumerate(candidate) if m["role"] == "assistant"] if all_assistant else [last]
        ids, labels = tokenize_spans(tokenizer, candidate, supervised, kwargs)
        if len(ids) <= max_len:
            return ids, labels
    return None


def with_think_scaffold(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The original's always-think contract: an empty think block before the final answer unless
    it already has one."""
    last = messages[-1]
    if "<think>" in last["content"]:
        return messages
    return messages[:-1] + [{"role": "assistant", "content": THINK_SCAFFOLD + last["content"]}]
