"""The standing malformed-input campaign: every case runs the CLI in process and must exit with
status 2, print exactly one ``argonne-kit: error:`` line naming the file (and the field or row),
show no traceback, and leave every file already saved unchanged.

``ARGONNE_CORPUS_REPORT=path.json`` makes each case also record its outcome (clear, unclear,
traceback, silent) into that file instead of failing, to count a code base's behaviour."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hardening_fixtures import CHECKPOINT_BODY
from train_fixtures import write_recipe

from argonne_kit.cli import main

REPORT = os.environ.get("ARGONNE_CORPUS_REPORT")
SHARD_MAGIC, SHARD_VERSION = 20240801, 7  # the kit's uint32 shard header
QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.toml"

Case = Callable[[Path, Path], tuple[list[str], list[str]]]
CASES: dict[str, Case] = {}


def case(name: str):
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


# -- recipes and overrides (resolve: nothing is trained) ---------------------------------------


def _child(tmp: Path, body: str, name: str = "child.toml") -> Path:
    (tmp / "base.toml").write_text(f'extends = "{QUICKSTART.as_posix()}"\n')
    path = tmp / name
    path.write_text('extends = "base.toml"\n' + body)
    return path


for _key, _section, _value in [
    ("keep_last", "checkpoint", "0"),
    ("micro_batch_size", "train", "0"),
    ("micro_batch_size", "train", "-4"),
    ("max_steps", "train", "0"),
    ("lr", "optim", "-1.0"),
    ("lr", "optim", "nan"),
    ("lr", "optim", "inf"),
    ("interval_steps", "checkpoint", "-2"),
    ("warmup_steps", "schedule", "-1"),
]:

    def _validator(tmp, run, key=_key, section=_section, value=_value):
        return ["resolve", str(_child(tmp, f"[{section}]\n{key} = {value}\n"))], ["child.toml", f"{section}.{key}"]

    case(f"recipe-{_section}.{_key}={_value}")(_validator)


@case("recipe-data.num_workers=-1")
def _(tmp, run):
    body = '[data]\nkind = "bin_shards"\nnum_workers = -1\n'
    return ["resolve", str(_child(tmp, body))], ["child.toml", "data.num_workers"]


@case("recipe-seq_len-beyond-context")
def _(tmp, run):
    body = "[train]\nseq_len = 512\ntotal_batch_tokens = 4096\n"
    return ["resolve", str(_child(tmp, body))], ["child.toml", "train.seq_len"]


@case("recipe-sample.top_p=2")
def _(tmp, run):
    return ["resolve", str(_child(tmp, "[sample]\ntop_p = 2.0\n"))], ["child.toml", "sample.top_p"]


@case("recipe-not-utf8")
def _(tmp, run):
    path = tmp / "latin1.toml"
    path.write_bytes("[train]\nseq_len = 32 # caf\xe9\n".encode("latin-1"))
    return ["resolve", str(path)], ["latin1.toml", "UTF-8"]


@case("recipe-invalid-toml")
def _(tmp, run):
    path = tmp / "broken.toml"
    path.write_text("[train\nseq_len = 32\n")
    return ["resolve", str(path)], ["broken.toml", "TOML"]


@case("recipe-unknown-key")
def _(tmp, run):
    return ["resolve", str(_child(tmp, "[optim]\nlearning_rat = 1e-3\n"))], ["child.toml", "optim.learning_rat"]


@case("recipe-wrong-type")
def _(tmp, run):
    return ["resolve", str(_child(tmp, '[train]\nmax_steps = "ten"\n'))], ["child.toml", "train.max_steps"]


@case("recipe-unknown-section")
def _(tmp, run):
    return ["resolve", str(_child(tmp, "[trian]\nseq_len = 32\n"))], ["child.toml", "trian"]


@case("recipe-unknown-plugin")
def _(tmp, run):
    return ["resolve", str(_child(tmp, '[data]\nkind = "bin_shard"\n'))], ["child.toml", "data.kind"]


@case("recipe-extends-missing")
def _(tmp, run):
    path = tmp / "orphan.toml"
    path.write_text('extends = "nowhere.toml"\n')
    return ["resolve", str(path)], ["orphan.toml", "nowhere.toml"]


@case("recipe-extends-cycle")
def _(tmp, run):
    (tmp / "a.toml").write_text('extends = "b.toml"\n')
    (tmp / "b.toml").write_text('extends = "a.toml"\n')
    return ["resolve", str(tmp / "a.toml")], ["a.toml", "cycle"]


@case("recipe-missing-file")
def _(tmp, run):
    return ["resolve", str(tmp / "absent.toml")], ["absent.toml"]


@case("recipe-is-a-directory")
def _(tmp, run):
    (tmp / "dir.toml").mkdir()
    return ["resolve", str(tmp / "dir.toml")], ["dir.toml"]


@case("override-without-equals")
def _(tmp, run):
    return ["resolve", str(QUICKSTART), "optim.lr"], ["command line", "optim.lr"]


@case("override-unknown-key")
def _(tmp, run):
    return ["resolve", str(QUICKSTART), "optim.lrr=1e-3"], ["command line", "optim.lrr"]


@case("override-empty-key")
def _(tmp, run):
    return ["resolve", str(QUICKSTART), "=3"], ["command line"]


@case("override-wrong-type")
def _(tmp, run):
    return ["resolve", str(QUICKSTART), "train.compile=1"], ["command line", "train.compile"]


@case("override-lr-nan")
def _(tmp, run):
    return ["resolve", str(QUICKSTART), "optim.lr=nan"], ["command line", "optim.lr"]


# -- token shards and manifests (run: fails before training) -----------------------------------


def _shard(path: Path, tokens, *, declared: int | None = None, magic: int = SHARD_MAGIC) -> Path:
    header = np.zeros(256, dtype="<i4")
    header[0], header[1], header[2] = magic, SHARD_VERSION, len(tokens) if declared is None else declared
    path.write_bytes(header.tobytes() + np.asarray(tokens, dtype="<u4").tobytes())
    return path


def _shard_recipe(tmp: Path, data_path: Path) -> Path:
    return write_recipe(
        tmp, f'[data]\nkind = "bin_shards"\npath = "{data_path.as_posix()}"\n', run_dir=tmp / "shard-run"
    )


@case("shards-one-empty-shard")
def _(tmp, run):
    (tmp / "d").mkdir()
    _shard(tmp / "d" / "a.bin", [])
    return ["run", str(_shard_recipe(tmp, tmp / "d"))], ["case/d:", "0 tokens"]


@case("shards-too-short-for-one-batch")
def _(tmp, run):
    (tmp / "d").mkdir()
    _shard(tmp / "d" / "a.bin", list(range(3, 40)))
    return ["run", str(_shard_recipe(tmp, tmp / "d"))], ["d"]


@case("shards-ids-beyond-vocab")
def _(tmp, run):
    (tmp / "d").mkdir()
    _shard(tmp / "d" / "a.bin", [5, 9, 70000, 12] * 400)
    return ["run", str(_shard_recipe(tmp, tmp / "d"))], ["a.bin", "70000"]


@case("shards-truncated")
def _(tmp, run):
    (tmp / "d").mkdir()
    _shard(tmp / "d" / "a.bin", [5] * 100, declared=5000)
    return ["run", str(_shard_recipe(tmp, tmp / "d"))], ["a.bin"]


@case("shards-bad-magic")
def _(tmp, run):
    (tmp / "d").mkdir()
    _shard(tmp / "d" / "a.bin", [5] * 5000, magic=1234)
    return ["run", str(_shard_recipe(tmp, tmp / "d"))], ["a.bin"]


@case("shards-empty-directory")
def _(tmp, run):
    (tmp / "d").mkdir()
    return ["run", str(_shard_recipe(tmp, tmp / "d"))], ["d"]


@case("shards-missing-path")
def _(tmp, run):
    return ["run", str(_shard_recipe(tmp, tmp / "nowhere"))], ["nowhere"]


def _manifest_dir(tmp: Path, shards_value) -> Path:
    (tmp / "m").mkdir()
    _shard(tmp / "m" / "a.bin", [5] * 5000)
    manifest = {"format": "argonne-kit-token-shards", "version": 1, "shards": shards_value}
    (tmp / "m" / "manifest.json").write_text(json.dumps(manifest))
    return tmp / "m"


@case("manifest-entry-without-tokens")
def _(tmp, run):
    return ["run", str(_shard_recipe(tmp, _manifest_dir(tmp, [{"path": "a.bin"}])))], ["manifest.json", "tokens"]


@case("manifest-shards-not-a-list")
def _(tmp, run):
    return ["run", str(_shard_recipe(tmp, _manifest_dir(tmp, "oops")))], ["manifest.json", "shards"]


@case("manifest-tokens-mismatch")
def _(tmp, run):
    path = _manifest_dir(tmp, [{"path": "a.bin", "tokens": 7}])
    return ["run", str(_shard_recipe(tmp, path))], ["a.bin"]


@case("manifest-not-json")
def _(tmp, run):
    (tmp / "m").mkdir()
    (tmp / "m" / "manifest.json").write_text("{nope")
    return ["run", str(_shard_recipe(tmp, tmp / "m"))], ["manifest.json"]


@case("manifest-entry-missing-shard")
def _(tmp, run):
    path = _manifest_dir(tmp, [{"path": "gone.bin", "tokens": 5000}])
    return ["run", str(_shard_recipe(tmp, path))], ["gone.bin"]


# -- parquet and preprocess --------------------------------------------------------------------


def _preprocess(tmp: Path, source: Path) -> list[str]:
    from argonne_kit.data.embedded import ensure_quickstart_assets

    tokenizer = ensure_quickstart_assets().tokenizer_dir
    return [
        "preprocess",
        "--input",
        str(source),
        "--tokenizer",
        str(tokenizer),
        "--output",
        str(tmp / "out"),
        "--no-progress",
    ]


@case("preprocess-empty-parquet-directory")
def _(tmp, run):
    (tmp / "pq").mkdir()
    return _preprocess(tmp, tmp / "pq"), ["pq"]


@case("preprocess-parquet-without-documents")
def _(tmp, run):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp / "pq").mkdir()
    pq.write_table(pa.table({"text": pa.array([], type=pa.string())}), tmp / "pq" / "empty.parquet")
    pq.write_table(pa.table({"text": ["", None]}), tmp / "pq" / "blank.parquet")
    return _preprocess(tmp, tmp / "pq"), ["pq", "no documents"]


@case("preprocess-missing-text-column")
def _(tmp, run):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp / "pq").mkdir()
    pq.write_table(pa.table({"body": ["a b c", "d e f"]}), tmp / "pq" / "x.parquet")
    return _preprocess(tmp, tmp / "pq"), ["x.parquet", "text"]


@case("preprocess-not-a-parquet-file")
def _(tmp, run):
    (tmp / "pq").mkdir()
    (tmp / "pq" / "x.parquet").write_text("not parquet at all")
    return _preprocess(tmp, tmp / "pq"), ["x.parquet"]


@case("preprocess-missing-input")
def _(tmp, run):
    return _preprocess(tmp, tmp / "nothing"), ["nothing"]


@case("parquet-source-empty-directory")
def _(tmp, run):
    (tmp / "pq").mkdir()
    recipe = write_recipe(
        tmp, f'[data]\nkind = "fineweb_parquet"\npath = "{(tmp / "pq").as_posix()}"\n', run_dir=tmp / "pq-run"
    )
    return ["run", str(recipe)], ["pq"]


# -- chat and preference rows ------------------------------------------------------------------


def _rows_recipe(tmp: Path, kind: str, lines: list[str]) -> Path:
    data = tmp / "rows.jsonl"
    data.write_text("".join(line + "\n" for line in lines))
    return write_recipe(tmp, f'[data]\nkind = "{kind}"\npath = "{data.as_posix()}"\n', run_dir=tmp / "rows-run")


GOOD_CHAT = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]})
GOOD_PAIR = json.dumps({"prompt": "Hi", "chosen": "Hello.", "rejected": "Go away."})


@case("chat-row-not-json")
def _(tmp, run):
    return ["run", str(_rows_recipe(tmp, "ultrachat", [GOOD_CHAT, "{not json"]))], ["rows.jsonl", "row 1"]


@case("chat-messages-not-a-list")
def _(tmp, run):
    return ["run", str(_rows_recipe(tmp, "ultrachat", [json.dumps({"messages": "hi"})] * 4))], ["rows.jsonl", "row"]


@case("chat-message-without-content")
def _(tmp, run):
    row = json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]})
    return ["run", str(_rows_recipe(tmp, "ultrachat", [row] * 4))], ["rows.jsonl", "row"]


@case("chat-row-is-a-list")
def _(tmp, run):
    return ["run", str(_rows_recipe(tmp, "ultrachat", ["[1, 2]"] * 4))], ["rows.jsonl", "row"]


@case("preference-row-without-rejected")
def _(tmp, run):
    row = json.dumps({"prompt": "Hi", "chosen": "Hello."})
    return ["run", str(_rows_recipe(tmp, "preference", [row] * 4))], ["rows.jsonl", "row"]


@case("preference-row-not-json")
def _(tmp, run):
    return ["run", str(_rows_recipe(tmp, "preference", [GOOD_PAIR, "{x"]))], ["rows.jsonl", "row 1"]


@case("preference-chosen-not-text")
def _(tmp, run):
    row = json.dumps({"prompt": "Hi", "chosen": 5, "rejected": "no"})
    return ["run", str(_rows_recipe(tmp, "preference", [row] * 4))], ["rows.jsonl", "row"]


# -- checkpoints, run directories and exported models -------------------------------------------


@case("run-dir-is-a-file")
def _(tmp, run):
    (tmp / "taken").write_text("a file")
    return ["run", str(write_recipe(tmp, CHECKPOINT_BODY, run_dir=tmp / "taken"))], ["taken"]


@case("init-from-missing")
def _(tmp, run):
    return ["run", str(write_recipe(tmp, CHECKPOINT_BODY + '[init]\nfrom = "nowhere"\n'))], ["init.from", "nowhere"]


@case("init-from-a-text-file")
def _(tmp, run):
    (tmp / "notes.txt").write_text("hello")
    recipe = write_recipe(tmp, CHECKPOINT_BODY + f'[init]\nfrom = "{(tmp / "notes.txt").as_posix()}"\n')
    return ["run", str(recipe)], ["notes.txt"]


@case("init-from-truncated-safetensors")
def _(tmp, run):
    model = shutil.copytree(run / "final_model", tmp / "model")
    blob = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    recipe = write_recipe(tmp, CHECKPOINT_BODY + f'[init]\nfrom = "{model.as_posix()}"\n', run_dir=tmp / "r2")
    return ["run", str(recipe)], ["model.safetensors"]


@case("init-from-original-pt-garbage")
def _(tmp, run):
    (tmp / "checkpoint_step_5.pt").write_bytes(b"\x80\x04garbage")
    recipe = write_recipe(tmp, CHECKPOINT_BODY + f'[init]\nfrom = "{(tmp / "checkpoint_step_5.pt").as_posix()}"\n')
    return ["run", str(recipe)], ["checkpoint_step_5.pt"]


@case("init-from-original-pt-without-model")
def _(tmp, run):
    import torch

    torch.save({"global_step": 3}, tmp / "checkpoint_step_3.pt")
    recipe = write_recipe(tmp, CHECKPOINT_BODY + f'[init]\nfrom = "{(tmp / "checkpoint_step_3.pt").as_posix()}"\n')
    return ["run", str(recipe)], ["checkpoint_step_3.pt", "model_state_dict"]


@case("resume-path-missing")
def _(tmp, run):
    recipe = write_recipe(tmp, CHECKPOINT_BODY + f'[run]\ndir = "{(tmp / "r").as_posix()}"\nresume = "gone"\n')
    return ["run", str(recipe)], ["run.resume", "gone"]


@case("checkpoint-manifest-garbage")
def _(tmp, run):
    (run / "checkpoints" / "step_00000008" / "checkpoint.json").write_text("{oops")
    (run / "checkpoints" / "step_00000004" / "checkpoint.json").write_text("[]")
    return ["run", str(write_recipe(tmp, CHECKPOINT_BODY, run_dir=run))], ["checkpoint.json"]


@case("checkpoint-all-truncated")
def _(tmp, run):
    for step in ("step_00000004", "step_00000008"):
        state = run / "checkpoints" / step / "state.pt"
        state.write_bytes(state.read_bytes()[:1000])
    return ["run", str(write_recipe(tmp, CHECKPOINT_BODY, run_dir=run))], ["state.pt"]


@case("checkpoint-resume-carry-mismatch")
def _(tmp, run):
    recipe = write_recipe(
        tmp,
        CHECKPOINT_BODY + f'[init]\nfrom = "{(run / "final_model").as_posix()}"\ncarry = "all"\n',
        run_dir=tmp / "r3",
    )
    return ["run", str(recipe)], ["init.carry"]


@case("resume-never-with-checkpoints")
def _(tmp, run):
    recipe = write_recipe(tmp, CHECKPOINT_BODY + f'[run]\ndir = "{run.as_posix()}"\nresume = "never"\n', run_dir=run)
    return ["run", str(recipe)], ["run.resume"]


# -- command-line arguments --------------------------------------------------------------------


@case("generate-top-p-2")
def _(tmp, run):
    return ["generate", str(run), "--prompt", "hi", "--top-p", "2"], ["--top-p"]


@case("generate-max-new-tokens-0")
def _(tmp, run):
    return ["generate", str(run), "--prompt", "hi", "--max-new-tokens", "0"], ["--max-new-tokens"]


@case("generate-temperature-negative")
def _(tmp, run):
    return ["generate", str(run), "--prompt", "hi", "--temperature", "-1"], ["--temperature"]


@case("generate-missing-model")
def _(tmp, run):
    return ["generate", str(tmp / "none"), "--prompt", "hi"], ["none"]


@case("generate-truncated-safetensors")
def _(tmp, run):
    model = shutil.copytree(run / "final_model", tmp / "model")
    blob = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    return ["generate", str(model), "--prompt", "hi", "--max-new-tokens", "2"], ["model"]


@case("chat-top-p-0")
def _(tmp, run):
    return ["chat", str(run), "--prompt", "hi", "--top-p", "0"], ["--top-p"]


@case("plot-metrics-without-lr")
def _(tmp, run):
    (tmp / "m").mkdir()
    (tmp / "m" / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
    return ["plot", str(tmp / "m"), "-o", str(tmp / "p.png")], ["metrics.jsonl", "lr"]


@case("plot-metrics-garbage")
def _(tmp, run):
    (tmp / "m").mkdir()
    (tmp / "m" / "metrics.jsonl").write_text("not json\n")
    return ["plot", str(tmp / "m"), "-o", str(tmp / "p.png")], ["metrics.jsonl"]


@case("plot-missing-run")
def _(tmp, run):
    return ["plot", str(tmp / "none"), "-o", str(tmp / "p.png")], ["none"]


@case("slurm-bad-time")
def _(tmp, run):
    return ["slurm", str(QUICKSTART), "--time", "tomorrow"], ["--time"]


@case("slurm-zero-nodes")
def _(tmp, run):
    return ["slurm", str(QUICKSTART), "--nodes", "0"], ["--nodes"]


@case("diff-missing-file")
def _(tmp, run):
    return ["diff", str(QUICKSTART), str(tmp / "other.toml")], ["other.toml"]


@case("resolve-checkpoint-without-recipe")
def _(tmp, run):
    (run / "checkpoints" / "step_00000008" / "resolved_recipe.toml").unlink()
    return ["resolve", str(run / "checkpoints" / "step_00000008")], ["step_00000008"]


# -- the test ----------------------------------------------------------------------------------


def classify(code, err: str, expected: list[str]) -> str:
    if code == "traceback" or "Traceback" in err:
        return "traceback"
    if code == 0:
        return "silent"
    lines = [line for line in err.splitlines() if line.startswith("argonne-kit: error:")]
    if code == 2 and len(lines) == 1 and all(word in lines[0] for word in expected):
        return "clear"
    return "unclear"


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_gets_one_clear_line(name, trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "saved-run"
    shutil.copytree(trained_run, run)
    work = tmp_path / "case"
    work.mkdir()
    argv, expected = CASES[name](work, run)
    saved = _snapshot(run)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    except Exception:
        import traceback

        traceback.print_exc()
        code = "traceback"
    err = capsys.readouterr().err
    outcome = classify(code, err, expected)
    if REPORT:
        results = json.loads(Path(REPORT).read_text()) if Path(REPORT).is_file() else {}
        results[name] = outcome
        Path(REPORT).write_text(json.dumps(results, indent=1, sort_keys=True))
        return
    assert outcome == "clear", f"{name}: exit {code}, expected one line naming {expected}:\n{err}"
    if name.startswith("checkpoint-"):
        return  # these cases damage the saved run themselves; the comparison is in their own tests
    assert _snapshot(run) == saved, "a saved file changed"
