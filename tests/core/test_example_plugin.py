"""The example third-party distribution (examples/argonne-kit-example-plugin) plugs in purely
through the `argonne_kit` entry-point group and is usable from a recipe."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "argonne-kit-example-plugin"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """The example plugin pip-installed (as a user would) into its own directory."""
    site = tmp_path_factory.mktemp("example_site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


def example_recipe(path: Path, *, smoothing: float, query_chunk: int, extra: str = "") -> Path:
    """The quickstart recipe with the example's objective and attention backend (plus ``extra``)."""
    path.write_text(
        textwrap.dedent(f"""
        extends = "{ROOT / "recipes" / "quickstart.toml"}"
        [objective]
        kind = "label_smoothed_clm"
        smoothing = {smoothing}
        [attention]
        kind = "chunked_math"
        query_chunk = {query_chunk}
    """)
        + textwrap.dedent(extra)
    )
    return path


def run_kit(site, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "argonne_kit", *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


@pytest.mark.slow
def test_example_plugin_is_listed_with_its_distribution(example_site):
    result = run_kit(example_site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["plugin"]: p for p in json.loads(result.stdout)}
    assert plugins["example"]["distribution"] == "argonne-kit-example-plugin"
    assert plugins["example"]["components"] == {"attention": ["chunked_math"], "objective": ["label_smoothed_clm"]}


@pytest.mark.slow
def test_example_plugin_can_be_excluded_by_env_var(example_site):
    env = {**os.environ, "PYTHONPATH": str(example_site), "ARGONNE_KIT_PLUGINS": "argonne-kit"}
    result = subprocess.run(
        [sys.executable, "-m", "argonne_kit", "plugins", "--json"], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "example" not in {p["plugin"] for p in json.loads(result.stdout)}


@pytest.mark.slow
def test_example_objective_and_backend_resolve_from_a_recipe(example_site, tmp_path):
    recipe = example_recipe(tmp_path / "r.toml", smoothing=0.2, query_chunk=16)
    result = run_kit(example_site, "resolve", str(recipe))
    assert result.returncode == 0, result.stderr
    assert 'kind = "label_smoothed_clm"' in result.stdout and "smoothing = 0.2" in result.stdout
    assert 'kind = "chunked_math"' in result.stdout
    bad = run_kit(example_site, "resolve", str(recipe), "objective.smoothin=0.1")
    assert bad.returncode == 2 and "objective.smoothin: unknown key; did you mean 'smoothing'?" in bad.stderr


@pytest.mark.slow
def test_example_objective_and_backend_train_from_a_recipe(example_site, tmp_path):
    """Two optimizer steps of the quickstart model with the third party's objective and attention."""
    run_dir = tmp_path / "run"
    recipe = example_recipe(
        tmp_path / "train.toml",
        smoothing=0.1,
        query_chunk=32,
        extra=f"""
        [schedule]
        kind = "constant"
        [train]
        max_steps = 2
        log_every = 1
        precision = "fp32"
        [sample]
        enabled = false
        [run]
        dir = "{run_dir.as_posix()}"
    """,
    )
    result = run_kit(example_site, "run", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert "chunked_math" in result.stdout + result.stderr  # the logged attention plan
    assert 'kind = "label_smoothed_clm"' in (run_dir / "resolved_recipe.toml").read_text()
