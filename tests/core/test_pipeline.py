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
    stages = load_pipeline(
        write(
            tmp_path,
            'description = "x"\n[[stage]]\nrecipe = "a.toml"\n'
            '[[stage]]\nrecipe = "sub/b.toml"\noverrides = ["optim.lr=1e-4"]\n',
        )
    )
    assert [(s.index, s.recipe, s.overrides) for s in stages] == [
        (1, tmp_path / "a.toml", ()),
        (2, tmp_path / "sub" / "b.toml", ("optim.lr=1e-4",)),
    ]
    assert stages[1].label == "stage 2 (b.toml)"
    assert load_pipeline(tmp_path / "a.toml") is None
    assert load_pipeline(tmp_path) is None  # a run directory is not a pipeline


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[stage]]\nrecipe = "a.toml"\n[train]\nmax_steps = 1\n', "only \\[\\[stage\\]\\] tables.*train"),
        ("stage = []\n", "one or more"),
        ('[[stage]]\nrecipes = "a.toml"\n', "stage 1: needs recipe"),
        ('[[stage]]\nrecipe = "a.toml"\noverride = ["x=1"]\n', "stage 1: unknown key\\(s\\) override"),
        ('[[stage]]\nrecipe = "a.toml"\noverrides = "optim.lr=1"\n', "stage 1: overrides: expected a list"),
        (
            '[[stage]]\nrecipe = "a.toml"\n[[stage]]\nrecipe = "missing.toml"\n',
            "stage 2: recipe not found: .*missing.toml",
        ),
        ('[[stage]]\nrecipe = "pipe.toml"\n', "itself a pipeline"),
    ],
)
def test_malformed_pipelines_name_the_stage_and_key(tmp_path, text, message):
    (tmp_path / "a.toml").write_text("[train]\nmax_steps = 1\n")
    with pytest.raises(RecipeError, match=message):
        load_pipeline(write(tmp_path, text))


def test_command_line_overrides_reach_every_stage_or_the_one_named(tmp_path):
    from argonne_kit.recipe.pipeline import stage_overrides

    for name in ("sft.toml", "dpo.toml"):
        (tmp_path / name).write_text("[train]\nmax_steps = 1\n")
    stages = load_pipeline(
        write(
            tmp_path, '[[stage]]\nrecipe = "sft.toml"\noverrides = ["optim.lr=1e-3"]\n[[stage]]\nrecipe = "dpo.toml"\n'
        )
    )
    got = stage_overrides(
        stages, ["train.max_steps=3", "2:objective.beta=0.2", "sft:train.seed=5", "dpo:data.path=x:y"]
    )
    assert got == [
        ["optim.lr=1e-3", "train.max_steps=3", "train.seed=5"],
        ["train.max_steps=3", "objective.beta=0.2", "data.path=x:y"],
    ]
    assert stage_overrides(stages, ["data.path=a:b"]) == [["optim.lr=1e-3", "data.path=a:b"], ["data.path=a:b"]]
    with pytest.raises(RecipeError, match="no stage '3' in this pipeline \\(stages: 1 or sft, 2 or dpo\\)"):
        stage_overrides(stages, ["3:train.seed=1"])


def test_an_override_one_stage_lacks_names_the_stage_and_the_prefix(tmp_path, capsys):
    from argonne_kit.cli import main

    (tmp_path / "a.toml").write_text('[objective]\nkind = "sft"\n')
    (tmp_path / "b.toml").write_text('[objective]\nkind = "dpo"\n')
    pipe = write(tmp_path, '[[stage]]\nrecipe = "a.toml"\n[[stage]]\nrecipe = "b.toml"\n')
    assert main(["resolve", str(pipe), "objective.beta=0.3"]) == 2
    err = capsys.readouterr().err
    assert "stage 1 (a.toml)" in err and "objective.beta" in err and "1:section.key=value" in err
    assert main(["resolve", str(pipe), "2:objective.beta=0.3"]) == 0
    out = capsys.readouterr().out
    assert out.count("# ===== stage") == 2 and "beta = 0.3" in out


def test_commands_that_take_one_recipe_refuse_a_pipeline_clearly(tmp_path, capsys):
    from argonne_kit.cli import main

    (tmp_path / "a.toml").write_text("[train]\nmax_steps = 1\n")
    pipe = write(tmp_path, '[[stage]]\nrecipe = "a.toml"\n')
    (tmp_path / "child.toml").write_text('extends = "pipe.toml"\n')
    for argv in (["slurm", str(pipe)], ["resolve", str(tmp_path / "child.toml")]):
        assert main(argv) == 2
        assert "a pipeline file ([[stage]] tables), not a recipe" in capsys.readouterr().err
