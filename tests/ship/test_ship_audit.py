"""`argonne-kit audit`: each defect planted in a copy of the tiny export shows up as its own
line; `--fix --out` writes a copy without them; the clean-process load check."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from argonne_kit.cli import main
from argonne_kit.release.audit import Release, audit_release, check_clean_load, meta_model, output_embedding_key

INDEX = "model.safetensors.index.json"


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2))


def edit_tensors(release: Path, near: str, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Apply ``change`` to the tensors of the shard holding ``near`` (adding or replacing) and fix
    the index."""
    index = json.loads((release / INDEX).read_text())
    shard = index["weight_map"][near]
    tensors = load_file(str(release / shard))
    change(tensors)
    save_file(tensors, str(release / shard), metadata={"format": "pt"})
    for key in tensors:
        index["weight_map"][key] = shard
    (release / INDEX).write_text(json.dumps(index))


def embed_key(release: Path) -> str:
    return next(k for k in json.loads((release / INDEX).read_text())["weight_map"] if "embed_tokens" in k)


def pad_vocab(release: Path) -> None:
    key = embed_key(release)
    rows = json.loads((release / "config.json").read_text())["vocab_size"]

    def grow(t):
        t[key] = torch.cat([t[key], torch.zeros(64 - rows % 64, t[key].shape[1], dtype=t[key].dtype)])

    edit_tensors(release, key, grow)
    edit_json(release / "config.json", vocab_size=rows + 64 - rows % 64)


def store_head_twice(release: Path) -> None:
    key = embed_key(release)
    head = output_embedding_key(meta_model(Release.read(release)))

    def add(t):
        t[head] = t[key].clone()

    edit_tensors(release, key, add)


#: name → (plant the defect in a release copy, {(check, substring)} of the lines it must add)
DEFECTS = {
    "shapes": (
        lambda r: edit_json(r / "config.json", intermediate_size=96),
        {("shapes", "mlp.gate_proj.weight is stored as [128, 64], the config implies [96, 64]")},
    ),
    "padded vocab": (pad_vocab, {("vocab", "(padded rows left in)")}),
    "window": (
        lambda r: edit_json(r / "config.json", interleaved_local_attention=True, local_attention_window=256),
        {("window", "attention window 256, but the model was trained with no window")},
    ),
    "null eos": (
        lambda r: (
            edit_json(r / "config.json", eos_token_id=None),
            edit_json(r / "generation_config.json", eos_token_id=None),
        ),
        {("special-ids", "eos_token_id is null")},
    ),
    "generation eos": (
        lambda r: edit_json(r / "generation_config.json", eos_token_id=7),
        {("special-ids", "generation_config.json eos_token_id = 7 but config.json says")},
    ),
    "chat eos on a base model": (
        lambda r: (
            edit_json(r / "config.json", eos_token_id=5),
            edit_json(r / "generation_config.json", eos_token_id=5),
        ),
        {("special-ids", "config.json eos_token_id = 5, expected 0 (the tokenizer's eos)")},
    ),
    "bos": (
        lambda r: (
            edit_json(r / "config.json", bos_token_id=3),
            edit_json(r / "generation_config.json", bos_token_id=3),
        ),
        set(),
    ),  # the tokenizer has no bos: any bos is its own choice
    "pad": (
        lambda r: edit_json(r / "config.json", pad_token_id=None),
        {
            ("special-ids", "pad_token_id is null"),
            ("special-ids", "generation_config.json pad_token_id = 0 but config.json says None"),
        },
    ),
    "tied head stored twice": (store_head_twice, {("tied", "is stored although tie_word_embeddings = true")}),
    "legacy aliases": (
        lambda r: edit_json(r / "config.json", n_embd=64, block_size=4096),
        {("aliases", "legacy alias 'n_embd'"), ("aliases", "legacy alias 'block_size' (= 4096)")},
    ),
    "dtype missing": (
        lambda r: edit_json(r / "config.json", dtype=..., torch_dtype=...),
        {("dtype", "records no dtype (weights are bfloat16)")},
    ),
    "dtype wrong": (
        lambda r: edit_json(r / "config.json", dtype="float32"),
        {("dtype", "records float32, the weights are bfloat16")},
    ),
    "auto_map without code": (
        lambda r: edit_json(
            r / "config.json",
            auto_map={
                "AutoConfig": "configuration_gone.GoneConfig",
                "AutoModelForCausalLM": "modeling_gone.GoneForCausalLM",
            },
        ),
        {
            ("auto_map", "modeling_gone.GoneForCausalLM but modeling_gone.py is not shipped"),
            ("auto_map", "configuration_gone.GoneConfig but configuration_gone.py is not shipped"),
        },
    ),
}


def lines(release: Path) -> set[tuple[str, str]]:
    return {(p.check, p.message) for p in audit_release(release, load_check=False)}


def test_each_planted_defect_is_reported_on_its_own_line(tiny_export, tmp_path):
    baseline = lines(tiny_export)
    assert {check for check, _m in baseline} <= {"auto_map"}  # no auto_map until the model writes it
    for name, (plant, expected) in DEFECTS.items():
        copy = tmp_path / name.replace(" ", "_")
        shutil.copytree(tiny_export, copy)
        plant(copy)
        new = lines(copy) - baseline
        if name == "auto_map without code":
            baseline_auto = {m for c, m in baseline if c == "auto_map"}
            new = {(c, m) for c, m in lines(copy) if m not in baseline_auto}
        if name == "shapes":  # every MLP tensor of both blocks
            assert {c for c, _m in new} == {"shapes"} and len(new) == 6, new
        else:
            assert len(new) == len(expected), (name, new)
        for check, text in expected:
            assert any(c == check and text in m for c, m in new), (name, check, text, new)


def test_audit_cli_lines_exit_status_and_fix(tiny_export, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("argonne_kit.release.audit.check_clean_load", lambda _d: [])
    broken = tmp_path / "broken"
    shutil.copytree(tiny_export, broken)
    for name in ("padded vocab", "window", "null eos", "tied head stored twice", "legacy aliases", "dtype missing"):
        DEFECTS[name][0](broken)
    assert main(["audit", str(broken)]) == 1
    out = capsys.readouterr().out.splitlines()
    for check in ("vocab", "window", "special-ids", "tied", "aliases", "dtype"):
        assert any(line.startswith(f"{broken}: {check}: ") for line in out), check

    fixed = tmp_path / "fixed"
    assert main(["audit", str(broken), "--fix", "--out", str(fixed)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith(f"{fixed}: ") and "clean" not in line] == []
    original, repaired = {}, {}
    for directory, state in ((tiny_export, original), (fixed, repaired)):
        for file in directory.glob("*.safetensors"):
            state.update(load_file(str(file)))
    assert original.keys() == repaired.keys()
    assert all(torch.equal(original[k], repaired[k]) for k in original)  # padded rows trimmed, nothing else moved
    assert (fixed / "README.md").read_text() == (tiny_export / "README.md").read_text()
    assert main(["audit", str(broken), "--fix"]) == 2


def test_clean_process_load_check(tiny_export, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    plain = tmp_path / "llama"
    torch.manual_seed(0)
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=958,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    ).save_pretrained(plain)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_export / name, plain / name)
    assert check_clean_load(plain) == []  # a model transformers knows loads and generates
    # without its standalone code an argonne2 model cannot load where argonne_kit is absent
    bare = tmp_path / "bare"
    shutil.copytree(tiny_export, bare)
    for name in ("configuration_argonne.py", "modeling_argonne.py"):
        (bare / name).unlink()
    edit_json(bare / "config.json", auto_map=...)
    problems = check_clean_load(bare)
    assert [p.check for p in problems] == ["load"] and "does not load without argonne_kit" in problems[0].message
