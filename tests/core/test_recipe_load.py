"""Recipe reading: extends chains, deep merge, cycles, overrides, provenance."""

import textwrap

import pytest

from argonne_kit.errors import RecipeError
from argonne_kit.recipe.load import apply_overrides, deep_merge, parse_override, read_recipe_file


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_extends_deep_merges_and_later_wins(tmp_path):
    write(
        tmp_path / "base.toml",
        """
        [optim]
        lr = 1.0
        betas = [0.9, 0.95]
        [train]
        seq_len = 8
    """,
    )
    write(
        tmp_path / "mid.toml",
        """
        extends = "base.toml"
        [optim]
        lr = 2.0
    """,
    )
    child = write(
        tmp_path / "child.toml",
        """
        extends = ["mid.toml"]
        [train]
        micro_batch_size = 3
    """,
    )
    raw = read_recipe_file(child)
    assert raw.data == {"optim": {"lr": 2.0, "betas": [0.9, 0.95]}, "train": {"seq_len": 8, "micro_batch_size": 3}}
    assert raw.origin_of("optim.lr").endswith("mid.toml")
    assert raw.origin_of("optim.betas").endswith("base.toml")
    assert raw.origin_of("train.micro_batch_size").endswith("child.toml")


def test_list_extends_later_file_wins(tmp_path):
    write(tmp_path / "one.toml", "[optim]\nlr = 1.0\n")
    write(tmp_path / "two.toml", "[optim]\nlr = 2.0\n")
    child = write(tmp_path / "c.toml", 'extends = ["one.toml", "two.toml"]\n')
    assert read_recipe_file(child).data["optim"]["lr"] == 2.0


def test_extends_cycle_is_named(tmp_path):
    write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(RecipeError, match=r"extends cycle: .*a\.toml -> .*b\.toml -> .*a\.toml"):
        read_recipe_file(tmp_path / "a.toml")


def test_missing_parent_and_bad_toml_name_the_file(tmp_path):
    write(tmp_path / "a.toml", 'extends = "nope.toml"\n')
    with pytest.raises(RecipeError, match=r"a\.toml: extends: file not found: .*nope\.toml"):
        read_recipe_file(tmp_path / "a.toml")
    write(tmp_path / "bad.toml", "[optim\nlr = 1\n")
    with pytest.raises(RecipeError, match=r"bad\.toml: invalid TOML"):
        read_recipe_file(tmp_path / "bad.toml")
    with pytest.raises(RecipeError, match="recipe not found"):
        read_recipe_file(tmp_path / "missing.toml")


def test_switching_plugin_kind_drops_the_old_plugins_keys():
    base = {"attention": {"kind": "a", "only_for_a": 1}}
    deep_merge(base, {"attention": {"kind": "b"}})
    assert base == {"attention": {"kind": "b"}}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("optim.lr=1e-4", (["optim", "lr"], 1e-4)),
        ("train.compile=true", (["train", "compile"], True)),
        ("run.dir=runs/x", (["run", "dir"], "runs/x")),
        ('run.dir="runs/y"', (["run", "dir"], "runs/y")),
        ("optim.betas=[0.8, 0.9]", (["optim", "betas"], [0.8, 0.9])),
        ("train.seq_len=64", (["train", "seq_len"], 64)),
    ],
)
def test_parse_override_types_values_as_toml(text, expected):
    assert parse_override(text) == expected


def test_override_without_equals_is_an_error():
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        parse_override("optim.lr")


def test_overrides_apply_in_order_and_record_command_line(tmp_path):
    raw = read_recipe_file(write(tmp_path / "r.toml", "[optim]\nlr = 1.0\n"))
    apply_overrides(raw, ["optim.lr=2.0", "optim.lr=3.0", "train.seq_len=16"])
    assert raw.data == {"optim": {"lr": 3.0}, "train": {"seq_len": 16}}
    assert raw.origin_of("optim.lr") == "command line"
