"""``argonne-kit slurm`` and the slice-chain logic of the sbatch script, on CPU: fake ``srun``,
``scontrol`` and ``sbatch`` on PATH record their calls; the rendered script runs under bash."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from argonne_kit.cli import main

RECIPE = """
[model]
hidden_size = 64
num_hidden_layers = 2
num_attention_heads = 4
[train]
seq_len = 32
micro_batch_size = 2
total_batch_tokens = 512
[run]
dir = "{run_dir}"
"""

FAKE_SRUN = """#!/bin/bash
echo "srun $*" >> "$FAKE_LOG"
case "$FAKE_SRUN_MODE" in
  complete) mkdir -p "$RUN_DIR_FOR_FAKE/final_model" && touch "$RUN_DIR_FOR_FAKE/final_model/resolved_recipe.toml"; exit 0;;
  slice) exit 0;;
  fail) exit 3;;
esac
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def cluster(tmp_path):
    """A recipe, a rendered script and fake SLURM commands; returns a runner of one slice."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _executable(bin_dir / "srun", FAKE_SRUN)
    _executable(bin_dir / "scontrol", "#!/bin/bash\necho node-a\necho node-b\n")
    _executable(bin_dir / "sbatch", '#!/bin/bash\necho "sbatch $*" >> "$FAKE_LOG"\necho "Submitted batch job 42"\n')
    run_dir = tmp_path / "run"
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(run_dir=run_dir))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "RUN_DIR_FOR_FAKE": str(run_dir),
    }
    for key in ("ARGONNE_SLICE", "ARGONNE_FAILURES"):
        env.pop(key, None)

    def run_slice(mode: str, slice_: int = 1, failures: int = 0) -> tuple[int, list[str]]:
        log.write_text("")
        slice_env = {
            **env,
            "FAKE_SRUN_MODE": mode,
            "ARGONNE_SLICE": str(slice_),
            "ARGONNE_FAILURES": str(failures),
            "SLURM_JOB_ID": "7",
            "SLURM_NNODES": "2",
            "SLURM_JOB_NODELIST": "node-[a-b]",
        }
        done = subprocess.run(
            ["bash", str(run_dir / "slurm" / "argonne.sbatch")],
            env=slice_env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.returncode, log.read_text().splitlines()

    return recipe, run_dir, env, run_slice


def test_cli_writes_and_submits_the_script(cluster, monkeypatch, capsys):
    recipe, run_dir, env, _ = cluster
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("FAKE_LOG", env["FAKE_LOG"])
    assert (
        main(
            [
                "slurm",
                str(recipe),
                "optim.lr=1e-4",
                "--nodes",
                "2",
                "--gpus-per-node",
                "4",
                "--time",
                "2:00:00",
                "--partition",
                "gpu",
                "--max-slices",
                "3",
                "--submit",
            ]
        )
        == 0
    )
    script = run_dir / "slurm" / "argonne.sbatch"
    text = script.read_text()
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --time=2:00:00",
        "#SBATCH --signal=USR1@300",
        "#SBATCH --partition=gpu",
        "OVERRIDES=(optim.lr=1e-4 run.nproc=8)",
        "MAX_SLICES=3",
    ):
        assert line in text, line
    assert "{{" not in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert Path(env["FAKE_LOG"]).read_text().strip() == f"sbatch {script}"
    assert "Submitted batch job 42" in capsys.readouterr().out


def test_cli_refuses_a_process_count_the_recipe_does_not_expect(cluster, capsys):
    recipe, *_ = cluster
    assert main(["slurm", str(recipe), "run.nproc=4", "--nodes", "1", "--gpus-per-node", "8"]) == 2
    assert "run.nproc = 4" in capsys.readouterr().err


def test_slices_resubmit_until_the_budget_completes(cluster):
    recipe, run_dir, _, run_slice = cluster
    assert (
        main(["slurm", str(recipe), "--nodes", "2", "--gpus-per-node", "2", "--max-slices", "3", "--max-failures", "1"])
        == 0
    )
    script = run_dir / "slurm" / "argonne.sbatch"

    # slice 1 saved and exited before the budget completed: slice 2 is submitted
    rc, calls = run_slice("slice", slice_=1)
    assert rc == 0 and calls[0].startswith("srun --kill-on-bad-exit=1")
    assert calls[1] == f"sbatch --export=ALL,ARGONNE_SLICE=2,ARGONNE_FAILURES=0 {script}"

    # a failed slice is retried while failures <= max_failures, then the chain stops
    rc, calls = run_slice("fail", slice_=2)
    assert calls[-1] == f"sbatch --export=ALL,ARGONNE_SLICE=3,ARGONNE_FAILURES=1 {script}"
    rc, calls = run_slice("fail", slice_=2, failures=1)
    assert rc == 3 and not any(c.startswith("sbatch") for c in calls)

    # the last allowed slice does not resubmit
    rc, calls = run_slice("slice", slice_=3)
    assert rc == 1 and not any(c.startswith("sbatch") for c in calls)

    # the slice that completes the budget (final_model/ written) ends the chain
    rc, calls = run_slice("complete", slice_=2)
    assert rc == 0 and calls == [c for c in calls if c.startswith("srun")]

    # a slice started after completion does nothing at all
    rc, calls = run_slice("slice", slice_=3)
    assert rc == 0 and calls == []
