"""The chat quality probe: a fixed set of prompts answered greedily, written to the run directory.

The original SFT/DPO scripts asked six fixed questions before, every N steps of, and after
training (original.md §3.5), with the chat template and a stop at the chat EOS. This module is that
probe for any stage and any model with ``generate()``; ``argonne-kit chat`` uses the same
rendering and stop rule.

The chat EOS is found the way the original found it — the last non-whitespace token of a
rendered one-turn assistant reply (``<|im_end|>`` for ChatML) — because a tokenizer's
``eos_token`` is often the *document* separator (``<|endoftext|>``), at which a chat model never
stops (D-5, D-10).

Calling it from the trainer (main rank only, on a plain unsharded model — e.g. the one
``train.sampling.main_rank_model`` returns — inside the same ``try`` that guards samples, D-21)::

    probe = ChatProbe.from_config(recipe.eval, base_dir=resolved.base_dir)    # once
    probe.run(model, tokenizer, run_dir, step=0, label="before")              # before the loop
    probe.run(model, tokenizer, run_dir, step=step, label="during")           # every eval.probe_every steps
    probe.run(model, tokenizer, run_dir, step=final_step, label="after")      # after the final save

A run does exactly this when ``eval.probe = true`` (the ``ChatProbeDuringTraining`` trainer callback,
then the export on completion).

Each call appends one JSON line per prompt to ``RUN_DIR/probe.jsonl``. Greedy decoding draws no
random numbers, so a probe never changes the training trajectory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from argonne_kit.errors import DataError
from argonne_kit.recipe.sections import EvalConfig

if TYPE_CHECKING:
    from argonne_kit.train.sampling import GenerativeModel

PROBE_FILE = "probe.jsonl"

#: Used when no prompts file is configured: short, checkable, and varied in answer length.
DEFAULT_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about the ocean.",
    "What is 12 plus 30?",
    "Give me three tips for staying focused while studying.",
    "Explain what a noun is to a child.",
    "Say hello in a friendly way.",
)


def load_prompts(path: str | Path | None, base_dir: str | Path = ".") -> list[list[dict[str, str]]]:
    """The probe conversations (each a list of messages ending with a user turn)."""
    if path is None:
        return [[{"role": "user", "content": p}] for p in DEFAULT_PROMPTS]
    file = Path(path)
    if not file.is_absolute() and (Path(base_dir) / file).exists():
        file = Path(base_dir) / file
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"eval.probe_prompts: cannot read {file}: {exc.strerror or exc}") from None
    conversations = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or (file.suffix != ".jsonl" and line.startswith("#")):
            continue
        if file.suffix == ".jsonl":
            conversations.append(_jsonl_conversation(line, file, number))
        else:
            conversations.append([{"role": "user", "content": line}])
    if not conversations:
        raise DataError(f"eval.probe_prompts: {file} holds no prompts")
    return conversations


def _jsonl_conversation(line: str, file: Path, number: int) -> list[dict[str, str]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}:{number}: invalid JSON: {exc.msg}") from None
    if isinstance(row, dict) and isinstance(row.get("prompt"), str):
        return [{"role": "user", "content": row["prompt"]}]
    messages = row.get("messages") if isinstance(row, dict) else None
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in messages)
    ):
        raise DataError(f'{file}:{number}: expected {{"prompt": str}} or {{"messages": [{{role, content}}, …]}}')
    if messages[-1]["role"] == "assistant":
        messages = messages[:-1]  # a reference answer: probe the question that precedes it
    if not messages or messages[-1]["role"] != "user":
        raise DataError(f"{file}:{number}: the conversation must end with a user turn")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _token_ids(encoded: Any) -> list[int]:
    """``apply_chat_template(tokenize=True)`` returns a BatchEncoding in transformers 5, a list before."""
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    if encoded and isinstance(encoded[0], list):
        encoded = encoded[0]
    return list(encoded)


def render_prompt(tokenizer, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of ``messages`` plus the assistant generation prompt, via the chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
            "chat needs a chat (SFT) tokenizer"
        )
    return _token_ids(tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True))


def chat_eos_token_id(tokenizer) -> int:
    """The token that ends an assistant turn: the last non-whitespace token of a rendered
    one-turn reply (``<|im_end|>`` for ChatML); the tokenizer's EOS without a chat template."""
    if not getattr(tokenizer, "chat_template", None):
        if tokenizer.eos_token_id is None:
            raise DataError("tokenizer has neither a chat template nor an EOS token")
        return tokenizer.eos_token_id
    ids = _token_ids(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], tokenize=True
        )
    )
    for token_id in reversed(ids):
        if tokenizer.decode([token_id]).strip():
            return token_id
    raise DataError("the chat template renders an empty assistant turn; cannot find the chat EOS")


def generate_reply(
    model: GenerativeModel,
    tokenizer,
    messages: Sequence[dict[str, str]],
    *,
    max_new_tokens: int,
    eos_token_id: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> dict[str, Any]:
    """One assistant turn: ``{"answer", "new_tokens", "stopped"}`` (``stopped`` = ended at the chat
    EOS rather than the token limit). Greedy when ``temperature <= 0``."""
    from argonne_kit.train.sampling import continue_ids

    new = continue_ids(
        model,
        render_prompt(tokenizer, messages),
        max_new_tokens=max_new_tokens,
        eos_token_id=eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        temperature=temperature,
        top_p=top_p,
    )
    stopped = eos_token_id in new
    if stopped:
        new = new[: new.index(eos_token_id)]
    return {
        "answer": tokenizer.decode(new, skip_special_tokens=True).strip(),
        "new_tokens": len(new),
        "stopped": stopped,
    }


@attrs.define
class ChatProbe:
    """The prompts and settings of one run's probe."""

    conversations: list[list[dict[str, str]]]
    max_new_tokens: int = 160

    @classmethod
    def from_config(cls, cfg: EvalConfig, base_dir: str | Path = ".") -> ChatProbe:
        conversations = load_prompts(cfg.probe_prompts, base_dir)
        if cfg.probe_system:
            conversations = [[{"role": "system", "content": cfg.probe_system}, *c] for c in conversations]
        return cls(conversations, cfg.probe_max_new_tokens)

    def run(
        self, model: GenerativeModel, tokenizer, run_dir: str | Path, *, step: int, label: str
    ) -> list[dict[str, Any]]:
        """Answer every prompt greedily and append the rows to ``run_dir/probe.jsonl``."""
        eos = chat_eos_token_id(tokenizer)
        rows = []
        for messages in self.conversations:
            reply = generate_reply(model, tokenizer, messages, max_new_tokens=self.max_new_tokens, eos_token_id=eos)
            rows.append({"step": step, "label": label, "prompt": messages[-1]["content"], **reply})
        path = Path(run_dir) / PROBE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return rows
