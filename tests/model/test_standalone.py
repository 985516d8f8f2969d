"""Exports carry standalone modeling code: ``trust_remote_code=True`` loads them where the kit
is not installed, with the same logits and greedy generation as the kit."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import torch
from model_fixtures import VOCAB

from argonne_kit.model.standalone import CONFIG_FILE, MODELING_FILE, standalone_sources

IDS = torch.randint(1, VOCAB, (2, 7), generator=torch.Generator().manual_seed(11))

#: run inside the fresh environment: load each export with remote code, report logits and a greedy continuation
REMOTE_SCRIPT = """
import json, sys, torch
try:
    import argonne_kit
    kit = True
except ImportError:
    kit = False
from transformers import AutoModelForCausalLM
ids = torch.tensor(json.loads(sys.argv[1]))
out = {"kit_importable": kit}
for directory in sys.argv[2:]:
    model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True).eval()
    with torch.no_grad():
        out[directory] = {"module": type(model).__module__, "logits": model(ids).logits.tolist(),
                          "greedy": model.generate(ids, max_new_tokens=4, do_sample=False).tolist()}
print(json.dumps(out))
"""


def test_generated_code_imports_only_torch_transformers_and_the_standard_library():
    allowed = {"torch", "transformers", *sys.stdlib_module_names}
    for name, text in standalone_sources().items():
        tree = ast.parse(text)
        compile(tree, name, "exec")
        top_level: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name.split(".")[0] for a in node.names} <= allowed, ast.unparse(node)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] in allowed or _guarded(tree, node), ast.unparse(node)
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                top_level[node.name] = top_level.get(node.name, 0) + 1
        assert [n for n, count in top_level.items() if count > 1] == [], f"{name}: a name is defined twice"
    assert "from .configuration_argonne import ArgonneConfig, ArgonneV1Config" in standalone_sources()[MODELING_FILE]


def _guarded(tree: ast.Module, node: ast.ImportFrom) -> bool:
    return any(isinstance(t, ast.Try) and node in ast.walk(t) for t in ast.walk(tree))


def test_save_pretrained_writes_the_code_and_auto_map(make_model, tmp_path):
    make_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_argonne.ArgonneConfig",
        "AutoModel": "modeling_argonne.ArgonneModel",
        "AutoModelForCausalLM": "modeling_argonne.ArgonneForCausalLM",
        "AutoModelForSequenceClassification": "modeling_argonne.ArgonneForSequenceClassification",
    }
    assert (tmp_path / MODELING_FILE).read_text() == standalone_sources()[MODELING_FILE]
    assert (tmp_path / CONFIG_FILE).read_text() == standalone_sources()[CONFIG_FILE]


def fresh_environment(root: Path) -> Path:
    """A virtual environment (no pip) that sees this environment's packages except argonne_kit:
    each installed entry is linked into one folder named by a .pth, leaving out the kit's package,
    its editable finder, its metadata (entry points) and every .pth file."""
    venv.create(root / "env", with_pip=False)
    python = root / "env" / "bin" / "python"
    deps = root / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("argonne", "__editable__")) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "deps.pth").write_text(f"{deps}\n")
    return python


@pytest.mark.slow  # a fresh interpreter imports torch and transformers (~10 s)
def test_a_fresh_environment_without_the_kit_loads_exports_with_remote_code(make_model, make_v1_model, tmp_path):
    models = {"argonne2": make_model(local_attention_window=3), "argonne1": make_v1_model()}
    for name, model in models.items():
        model.save_pretrained(tmp_path / name)
    python = fresh_environment(tmp_path / "fresh")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [python, "-c", REMOTE_SCRIPT, json.dumps(IDS.tolist()), *(str(tmp_path / name) for name in models)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["kit_importable"] is False
    for name, model in models.items():
        remote = out[str(tmp_path / name)]
        assert remote["module"].endswith("modeling_argonne")
        with torch.no_grad():
            torch.testing.assert_close(torch.tensor(remote["logits"]), model(IDS).logits, rtol=0, atol=1e-6)
            greedy = model.generate(IDS, max_new_tokens=4, do_sample=False)
        assert torch.equal(torch.tensor(remote["greedy"]), greedy)
