"""Checkpoints written before the model's parameters moved under ``model.`` (``embed_tokens``,
``blocks.{i}``, ``norm`` at the top level, as the kit saved them before the Hugging Face layout)
still resume and initialise, in both checkpoint formats, optimizer state included.

The earlier layout is made here by renaming a current checkpoint's keys back: the names are
written out by hand, not derived from the model's own mapping, so a wrong mapping fails."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from train_fixtures import run_cli, write_recipe

from argonne_kit.model import build_model
from argonne_kit.recipe.model_sections import Argonne2ModelConfig
from argonne_kit.train.checkpoint import CHECKPOINTS_DIR, MANIFEST_FILE, checksum_files
from argonne_plugins.parallel import checkpoint

#: current name → the name the kit's checkpoints used before
EARLIER_NAMES = [
    (r"^model\.embed_tokens\.", "embed_tokens."),
    (r"^model\.layers\.", "blocks."),
    (r"^model\.norm\.", "norm."),
]


def earlier_name(key: str) -> str:
    for pattern, old in EARLIER_NAMES:
        if re.match(pattern, key):
            return re.sub(pattern, old, key, count=1)
    return key


def to_earlier_layout(state: dict) -> dict:
    out = dict(state)
    out["model"] = {earlier_name(k): v for k, v in state["model"].items()}
    if "optim" in state:
        optim = state["optim"]
        out["optim"] = {
            "state": {earlier_name(k): v for k, v in optim["state"].items()},
            "param_groups": [{**g, "params": [earlier_name(p) for p in g["params"]]} for g in optim["param_groups"]],
        }
    return out


def rewrite_as_earlier_layout(step_dir) -> None:
    """Rename ``state.pt``'s keys to the earlier names and re-record the manifest's checksums."""
    state_file = step_dir / checkpoint.TORCH_STATE_FILE
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    assert any(k.startswith("model.layers.") for k in state["model"])
    torch.save(to_earlier_layout(state), state_file)
    manifest = json.loads((step_dir / MANIFEST_FILE).read_text())
    manifest["files"] = {rel: {"size": size, "sha256": digest} for rel, size, digest in checksum_files(step_dir)}
    (step_dir / MANIFEST_FILE).write_text(json.dumps(manifest))


def model_state(step_dir):
    return torch.load(step_dir / checkpoint.TORCH_STATE_FILE, map_location="cpu", weights_only=True)["model"]


def test_an_earlier_layout_checkpoint_resumes_bit_identically(tmp_path):
    body = "[checkpoint]\ninterval_steps = 4\nkeep_last = 5\n"
    full = write_recipe(tmp_path, body, run_dir=tmp_path / "full")
    assert run_cli(full) == 0

    resumed_dir = tmp_path / "resumed"
    trained_dir = resumed_dir / CHECKPOINTS_DIR / "step_00000004"
    shutil.copytree(tmp_path / "full" / CHECKPOINTS_DIR / "step_00000004", trained_dir)
    rewrite_as_earlier_layout(trained_dir)
    assert not any(k.startswith("model.") for k in model_state(trained_dir))

    assert run_cli(write_recipe(tmp_path, body, name="resumed.toml", run_dir=resumed_dir)) == 0
    wa = model_state(tmp_path / "full" / CHECKPOINTS_DIR / "step_00000008")
    wb = model_state(resumed_dir / CHECKPOINTS_DIR / "step_00000008")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_init_from_an_earlier_layout_checkpoint_equals_init_from_the_current_one(tmp_path):
    source = write_recipe(tmp_path, "[checkpoint]\ninterval_steps = 8\n", run_dir=tmp_path / "source")
    assert run_cli(source) == 0
    current = tmp_path / "source" / CHECKPOINTS_DIR / "step_00000008"
    earlier = tmp_path / "earlier" / "step_00000008"
    shutil.copytree(current, earlier)
    rewrite_as_earlier_layout(earlier)

    finals = []
    for name, start in (("from_current", current), ("from_earlier", earlier)):
        recipe = write_recipe(tmp_path, f'[init]\nfrom = "{start}"\n', name=f"{name}.toml", run_dir=tmp_path / name)
        assert run_cli(recipe, "train.max_steps=2", "schedule.allow_no_decay=true") == 0
        finals.append(model_state(tmp_path / name / CHECKPOINTS_DIR / "step_00000010"))  # cumulative
    a, b = finals
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fmt", ["torch", "dcp"])
def test_both_formats_load_model_and_optimizer_under_earlier_names(tmp_path, fmt):
    def tiny():
        torch.manual_seed(0)
        section = Argonne2ModelConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=32
        )
        return build_model(section, vocab_size=97)

    model = tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(input_ids=torch.randint(0, 97, (2, 8)), labels=torch.randint(0, 97, (2, 8))).loss.backward()
    optimizer.step()
    state = checkpoint.native_state(model, optimizer)
    checkpoint.save({**to_earlier_layout(state), "step": 1}, str(tmp_path), fmt=fmt, strategy="test", mesh={})

    fresh = tiny()
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    extras = checkpoint.load(fresh, fresh_optimizer, str(tmp_path))
    assert extras == {"step": 1}
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    saved, loaded = checkpoint.native_state(model, optimizer), checkpoint.native_state(fresh, fresh_optimizer)
    assert saved["optim"]["state"].keys() == loaded["optim"]["state"].keys()
    for key, moments in saved["optim"]["state"].items():
        for moment, value in moments.items():
            assert torch.equal(value, loaded["optim"]["state"][key][moment]), (key, moment)
