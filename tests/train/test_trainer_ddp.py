"""``argonne-kit run`` under torchrun with DDP (2 gloo processes) reproduces the single-process
run with the same global batch: same losses, same global token counts (D-24), with gradient
accumulation and no_sync; rank 0 alone writes metrics and checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import run_cli, write_recipe

from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, verify_checkpoint

HERE = Path(__file__).resolve().parent
LAUNCHER = """
import os, sys
sys.path.insert(0, {here!r})
from train_fixtures import register_synthetic_data
register_synthetic_data()
from argonne_kit.cli import main
code = main(["run", {recipe!r}])
sys.stdout.flush(); sys.stderr.flush()
os._exit(code)
"""


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_data_parallel_run_matches_single_process(tmp_path, strategy):
    common = "[checkpoint]\ninterval_steps = 3\nkeep_last = 1\n"
    train = (
        "[train]\nseq_len = 32\nmicro_batch_size = {mb}\ntotal_batch_tokens = 256\nmax_steps = 6\n"
        'precision = "fp32"\ndevice = "cpu"\nlog_every = 1\n'
    )
    single = write_recipe(tmp_path, common + train.format(mb=4), name="single.toml", run_dir=tmp_path / "single")
    assert run_cli(single) == 0
    ddp = write_recipe(
        tmp_path,
        common + train.format(mb=2) + f'[parallel]\nkind = "{strategy}"\n[run]\nnproc = 2\n'
        f'dir = "{(tmp_path / "ddp").as_posix()}"\n',
        name="ddp.toml",
    )
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER.format(here=str(HERE), recipe=str(ddp)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    a = [r for r in records(tmp_path / "single") if "loss" in r]
    b = [r for r in records(tmp_path / "ddp") if "loss" in r]
    assert [r["step"] for r in b] == list(range(1, 7)), proc.stdout + proc.stderr
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b] == [256 * s for s in range(1, 7)]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5)
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-4)
    assert (tmp_path / "ddp" / "final_model" / "config.json").is_file()
    manifest = verify_checkpoint(tmp_path / "ddp" / CHECKPOINTS_DIR / "step_00000006", expect_step=6)
    assert manifest["world_size"] == 2  # every rank's trainer state read back
    assert "world_size = 2" in (tmp_path / "ddp" / "resolved_recipe.toml").read_text()
