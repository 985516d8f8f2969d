"""Pipeline files (``[[stage]]`` tables): what is accepted, and the clear errors for the rest."""

from __future__ import annotations

import pytest

from argonne_kit.errors import RecipeError
from argonne_kit.recipe.pipeline import load_pipeline


def write(tmp_path, text: str, name: str = "pipe.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_stages_resolve_against_the_pipeline_file(tmp_path):
    (tmp_path / "a.toml").write_text("[train]\nmax_steps = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.toml").write_text("[train]\nmax_steps = 2\n")
    stages = load_pipeline(write(tmp_path, 'description = "x"\n[[stage]]\nrecipe = "a.toml"\n'
                                           '[[stage]]\nrecipe = "sub/b.toml"\noverrides = ["optim.lr=1e-4"]\n'))
    assert [(s.index, s.recipe, s.overrides) for s in stages] == [
        (1, tmp_path / "a.toml", ()), (2, tmp_path / "sub" / "b.toml", ("optim.lr=1e-4",))]
    assert stages[1].label == "stage 2 (b.toml)"
    assert load_pipeline(tmp_path / "a.toml") is None
    assert load_pipeline(tmp_path) is None  # a run directory is not a pipeline


@pytest.mark.parametrize("text, message", [
    ('[[stage]]\nrecipe = "a.toml"\n[train]\nmax_steps = 1\n', "only \\[\\[stage\\]\\] tables.*train"),
    ("stage = []\n", "one or more"),
    ("[[stage]]\nrecipes = \"a.toml\"\n", "stage 1: needs recipe"),
    ('[[stage]]\nrecipe = "a.toml"\noverride = ["x=1"]\n', "stage 1: unknown key\\(s\\) override"),
    ('[[stage]]\nrecipe = "a.toml"\noverrides = "optim.lr=1"\n', "stage 1: overrides: expected a list"),
    ('[[stage]]\nrecipe = "a.toml"\n[[stage]]\nrecipe = "missing.toml"\n', "stage 2: recipe not found: .*missing.toml"),
    ('[[stage]]\nrecipe = "pipe.toml"\n', "itself a pipeline"),
])
def test_malformed_pipelines_name_the_stage_and_key(tmp_path, text, message):
    (tmp_path / "a.toml").write_text("[train]\nmax_steps = 1\n")
    with pytest.raises(RecipeError, match=message):
        load_pipeline(write(tmp_path, text))
