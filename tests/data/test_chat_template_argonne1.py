"""``chat_template = "argonne1"``: the Argonne-1.0-Instruct format ``USER: …\\n\\nASSISTANT: …\\n\\n``
with every user span masked out of the loss."""

from __future__ import annotations

import copy
import json

from datatest_utils import take

from argonne_kit.contracts.data import DataContext
from argonne_kit.recipe.convert import structure
from argonne_kit.registry import get_registry


def _source(tokenizer, config, T=96):
    component = get_registry().get("data", "ultrachat")
    cfg = structure(config, component.config_cls, "data")
    return component.factory(cfg, DataContext(0, 1, 1, T, 0, tokenizer, "."))


def test_argonne1_format_supervises_every_reply_and_masks_users(tokenizer, tmp_path):
    tok = copy.deepcopy(tokenizer)  # the source installs the template on the run's tokenizer
    row = {
        "conversations": [
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Name a color."},
            {"role": "assistant", "content": "Red."},
        ]
    }
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(row) + "\n")
    batch = take(
        _source(
            tok,
            {
                "path": str(path),
                "messages_column": "conversations",
                "mask": "all_assistant",
                "chat_template": "argonne1",
                "shuffle": False,
            },
        ),
        1,
    )[0]
    n = int(batch["attention_mask"].sum())
    eos = tok.eos_token
    text = tok.decode(batch["input_ids"][0, :n])
    assert text == f"USER: Hi there\n\nASSISTANT: Hello!{eos}\n\nUSER: Name a color.\n\nASSISTANT: Red.{eos}\n\n"
    labels = batch["labels"][0, :n]
    supervised = tok.decode(batch["input_ids"][0, :n][labels != -100])
    assert supervised == f"Hello!{eos}Red.{eos}"
    assert "USER" not in supervised and "ASSISTANT" not in supervised
    assert tok.chat_template.startswith("{% for m in messages %}")  # saved with the export


def test_a_jinja_string_replaces_the_template(tokenizer, tmp_path):
    tok = copy.deepcopy(tokenizer)
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}) + "\n"
    )
    template = (
        "{% for m in messages %}{{ m['role'] }}> {{ m['content'] }}|{% endfor %}"
        "{% if add_generation_prompt %}assistant> {% endif %}"
    )
    batch = take(_source(tok, {"path": str(path), "chat_template": template, "shuffle": False}), 1)[0]
    n = int(batch["attention_mask"].sum())
    assert tok.decode(batch["input_ids"][0, :n]) == "user> a|assistant> b|"
