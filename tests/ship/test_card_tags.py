"""The model card's ``chat`` tag comes from the objective's own ``chat_model``, for any objective."""

from __future__ import annotations

from argonne_kit.release.card import _front_matter


def _tags(objective: dict) -> list[str]:
    front = _front_matter({"objective": objective})
    return [line.removeprefix("- ").strip() for line in front.splitlines() if line.startswith("- ")]


def test_chat_objectives_tag_the_card_as_chat():
    assert "chat" in _tags({"kind": "sft"}) and "chat" in _tags({"kind": "dpo", "beta": 0.1})
    assert "chat" not in _tags({"kind": "clm"})
    # an objective whose plugin is not installed where the card is written: no claim either way
    assert "chat" not in _tags({"kind": "someone_elses_objective", "x": 1})
