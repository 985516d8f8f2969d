import json

from train_fixtures import run_cli, write_recipe


def test_tiny_run_trains_checkpoints_and_exports(tmp_path):
    recipe = write_recipe(tmp_path)
    assert run_cli(recipe) == 0
    run = tmp_path / "run"
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert (run / "final_model" / "config.json").is_file()
