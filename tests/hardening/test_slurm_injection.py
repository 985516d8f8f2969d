"""``argonne-kit slurm`` with hostile values: a control character anywhere is refused before any
file is written; everything else is quoted, so the script runs the value literally."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from hardening_fixtures import one_error_line

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
dir = {run_dir}
"""


def _recipe(tmp_path: Path, run_dir: str) -> Path:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE.format(run_dir=_toml_string(run_dir)))
    return recipe


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


@pytest.mark.parametrize(
    "case", ["run_dir_newline", "job_name_newline", "override_newline", "partition_cr", "account_quote", "qos_escape"]
)
def test_control_characters_and_unquotable_values_are_refused_before_writing(tmp_path, capsys, case):
    run_dir = str(tmp_path / "run")
    args: list[str] = []
    if case == "run_dir_newline":
        run_dir = str(tmp_path / "run\n#SBATCH --wrap=touch /tmp/pwned")
    elif case == "job_name_newline":
        args = ["--job-name", "x\nrm -rf ~"]
    elif case == "override_newline":
        args = ["optim.lr=1e-4\ntouch /tmp/pwned"]
    elif case == "partition_cr":
        args = ["--partition", "gpu\r#SBATCH --wrap=evil"]
    elif case == "account_quote":
        args = ["--account", 'a" --wrap="evil']
    elif case == "qos_escape":
        args = ["--qos", "normal\x1b[2J"]
    recipe = _recipe(tmp_path, run_dir)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["slurm", str(recipe), *args]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "refused" in line or "optim.lr" in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_shell_metacharacters_are_passed_literally(tmp_path, capsys):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run $(touch pwned) `touch pwned` ;touch pwned"
    recipe = _recipe(tmp_path, str(run_dir))
    hostile_name = "job $(touch pwned) name"
    assert (
        main(["slurm", str(recipe), f"run.dir={run_dir}", "--job-name", hostile_name, "--partition", "gpu;touch"]) == 0
    )
    capsys.readouterr()
    script = run_dir.resolve() / "slurm" / "argonne.sbatch"
    text = script.read_text()
    assert f'#SBATCH --job-name="{hostile_name}"' in text
    assert '#SBATCH --partition="gpu;touch"' in text
    header = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert len(header) == 10  # no injected line

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _executable(bin_dir / "srun", '#!/bin/bash\nfor a in "$@"; do echo "ARG:$a"; done >> "$FAKE_LOG"\n')
    _executable(bin_dir / "scontrol", "#!/bin/bash\necho node-a\n")
    _executable(bin_dir / "sbatch", '#!/bin/bash\necho "sbatch $*" >> "$FAKE_LOG"\n')
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "SLURM_JOB_ID": "7",
        "SLURM_NNODES": "1",
        "SLURM_JOB_NODELIST": "node-a",
    }
    done = subprocess.run(
        ["bash", str(script)], check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert not marker.exists() and not (tmp_path / "run" / "pwned").exists()
    assert f"ARG:run.dir={run_dir}" in log.read_text().splitlines()
