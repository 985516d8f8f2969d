"""publish_dir: the first finished directory wins, nobody replaces it, a missing parent is an error."""

from __future__ import annotations

import pytest

from argonne_kit.safe_io import publish_dir


def _built(path, text):
    path.mkdir()
    (path / "complete.json").write_text(text)
    return path


def test_the_first_directory_wins_and_is_never_replaced(tmp_path):
    final = tmp_path / "assets"
    assert publish_dir(_built(tmp_path / "a", "first"), final) is True
    assert not (tmp_path / "a").exists()
    second = _built(tmp_path / "b", "second")
    assert publish_dir(second, final) is False
    assert (final / "complete.json").read_text() == "first" and second.exists()


def test_a_failure_other_than_losing_the_race_is_raised(tmp_path):
    with pytest.raises(OSError):
        publish_dir(_built(tmp_path / "a", "x"), tmp_path / "missing-parent" / "assets")
