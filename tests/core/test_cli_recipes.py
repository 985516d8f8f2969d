"""`argonne-kit resolve` / `diff` / `plugins` / `--help`, in process and as a console script."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from argonne_kit.cli import build_parser, main


def test_resolve_prints_merged_recipe_with_override(test_registry, recipe_dir, capsys):
    assert main(["resolve", str(recipe_dir / "a.toml"), "optim.lr=1e-4"]) == 0
    out = tomllib.loads(capsys.readouterr().out)
    assert out["optim"]["lr"] == 1e-4
    assert out["model"]["hidden_size"] == 64  # inherited from bases/tiny.toml
    assert out["train"]["precision"] == "bf16"  # default made explicit
    assert out["derived"]["model"]["head_dim"] == 16


def test_user_error_is_one_line_exit_2(test_registry, recipe_dir, capsys):
    assert main(["resolve", str(recipe_dir / "a.toml"), "optim.learning_rat=1e-4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("argonne-kit: error: command line: optim.learning_rat: unknown key; did you mean 'lr'?")


def test_diff_shows_exactly_the_inherited_change_and_exits_1(test_registry, recipe_dir, capsys):
    assert main(["diff", str(recipe_dir / "a.toml"), str(recipe_dir / "b.toml")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == ["[optim]", "  lr: 0.0003 -> 0.0001"]


def test_diff_equal_when_value_is_given_or_inherited(test_registry, recipe_dir, capsys):
    (recipe_dir / "c.toml").write_text('extends = "a.toml"\n[optim]\nlr = 3e-4\n[train]\nprecision = "bf16"\n')
    assert main(["diff", str(recipe_dir / "a.toml"), str(recipe_dir / "c.toml")]) == 0
    assert "no differences" in capsys.readouterr().out


def test_diff_reports_derived_values_only_on_request(test_registry, recipe_dir, capsys):
    (recipe_dir / "d.toml").write_text('extends = "a.toml"\n[train]\nseq_len = 64\n')
    assert main(["diff", str(recipe_dir / "a.toml"), str(recipe_dir / "d.toml")]) == 1
    assert capsys.readouterr().out.splitlines()[2:] == ["[train]", "  seq_len: 32 -> 64"]
    assert main(["diff", "--derived", str(recipe_dir / "a.toml"), str(recipe_dir / "d.toml")]) == 1
    assert "  train.tokens_per_step: 64 -> 128" in capsys.readouterr().out


def test_diff_json(test_registry, recipe_dir, capsys):
    assert main(["diff", "--json", str(recipe_dir / "a.toml"), str(recipe_dir / "b.toml")]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["equal"] is False
    assert data["changes"] == [{"section": "optim", "key": "lr", "a": 3e-4, "b": 1e-4}]


def test_diff_accepts_a_directory_holding_a_resolved_recipe(test_registry, recipe_dir, capsys):
    """Run dirs, checkpoints and exported models all hold resolved_recipe.toml (D-1)."""
    from argonne_kit.recipe import resolve_recipe

    run_dir = recipe_dir / "runs" / "r1"
    run_dir.mkdir(parents=True)
    resolved = resolve_recipe(recipe_dir / "b.toml")
    resolved.meta = {"argonne_kit": "0.1.0", "git_revision": "abc"}
    (run_dir / "resolved_recipe.toml").write_text(resolved.to_toml())
    assert main(["diff", str(recipe_dir / "b.toml"), str(run_dir)]) == 0
    assert main(["diff", "--meta", str(recipe_dir / "b.toml"), str(run_dir)]) == 1
    capsys.readouterr()
    assert main(["diff", str(recipe_dir / "b.toml"), str(recipe_dir)]) == 2
    assert "no resolved_recipe.toml" in capsys.readouterr().err


def test_plugins_json_lists_components(test_registry, capsys):
    assert main(["plugins", "--json"]) == 0
    data = {p["plugin"]: p for p in json.loads(capsys.readouterr().out)}
    assert data["testplugin"]["distribution"] == "test-dist"
    assert data["testplugin"]["components"]["attention"] == ["auto", "math"]
    assert data["schedules"]["components"] == {"schedule": ["constant", "cosine", "wsd"]}


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"run", "resolve", "diff", "plugins"} <= set(sub.choices)
    for name, cmd in sub.choices.items():
        assert cmd.description or cmd.format_help(), name
        for action in cmd._actions:
            if action.dest != "help":
                assert action.help, f"{name}: {action.dest} has no help"


def test_console_script_and_module_entry_points():
    # the console script installed next to this interpreter (the venv may not be activated)
    script = str(Path(sys.executable).parent / "argonne-kit")
    for argv in ([script, "--help"], [sys.executable, "-m", "argonne_kit", "--help"]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "resolve" in result.stdout and "diff" in result.stdout


def test_builtins_register_every_contract_kind():
    """`argonne-kit plugins` lists at least one component for each of the four contract kinds."""
    result = subprocess.run(
        [sys.executable, "-m", "argonne_kit", "plugins", "--json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    kinds = {k for p in json.loads(result.stdout) for k in p["components"]}
    assert {"attention", "objective", "parallel", "data"} <= kinds


def test_run_prints_the_torchrun_line_when_the_recipe_wants_more_processes(capsys):
    """`argonne-kit run` started with fewer processes than run.nproc says how to launch it."""
    recipe = str(Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml")
    assert main(["run", recipe, "run.nproc=2"]) == 2
    err = capsys.readouterr().err
    assert "run.nproc = 2 but this launch has 1 process" in err
    assert "torchrun --standalone --nproc-per-node=2 -m argonne_kit run" in err and "quickstart.toml" in err
