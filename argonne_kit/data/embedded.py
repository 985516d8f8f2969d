"""The embedded quickstart assets: a corpus and a tokenizer that need no network.

:func:`ensure_quickstart_assets` generates, on first use, into a cache directory:

- ``parquet/train/*.parquet`` and ``parquet/validation/*.parquet`` — the procedurally written
  corpus of :mod:`argonne_kit.data.quickstart_corpus` with the FineWeb column schema, so the
  quickstart exercises the real ``preprocess`` path;
- ``tokenizer/`` — a byte-level BPE (Qwen-style pre-tokenizer, vocab 2,048) trained on that corpus
  with ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` specials and a ChatML chat template.

The small chat / preference / CoT samples ship as JSONL in ``argonne_kit/resources/quickstart``.
Generation is deterministic (same bytes on every run) and takes a few seconds; a finished
directory is published by an atomic rename, so concurrent first uses (several ranks) are safe.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import attrs

from argonne_kit.data import quickstart_corpus
from argonne_kit.errors import DataError
from argonne_kit.safe_io import publish_dir

#: Bump when the generated content changes; each version lives in its own cache directory.
ASSETS_VERSION = 1
TRAIN_DOCS, VALIDATION_DOCS, TRAIN_FILES = 4000, 200, 2
CORPUS_SEED, VALIDATION_SEED = 20240801, 7
VOCAB_SIZE = 2048
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
#: Added as plain (non-special) tokens, as in Qwen3, so CoT targets keep them when decoded.
THINK_TOKENS = ["<think>", "</think>"]
#: Qwen's pre-tokenizer split (digits one at a time).
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "quickstart"
FINEWEB_COLUMNS = ("text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count")


@attrs.frozen
class QuickstartAssets:
    """Paths of the embedded quickstart assets."""

    root: Path
    train_parquet_dir: Path
    validation_parquet_dir: Path
    tokenizer_dir: Path
    chat_jsonl: Path
    preference_jsonl: Path
    cot_jsonl: Path


def default_cache_dir() -> Path:
    """``$ARGONNE_KIT_CACHE``, else ``$XDG_CACHE_HOME/argonne_kit``, else ``~/.cache/argonne_kit``."""
    if os.environ.get("ARGONNE_KIT_CACHE"):
        return Path(os.environ["ARGONNE_KIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "argonne_kit"


def ensure_quickstart_assets(cache_dir: str | Path | None = None) -> QuickstartAssets:
    """Generate the quickstart assets under ``cache_dir`` unless already there; return their paths."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = cache / f"quickstart-v{ASSETS_VERSION}"
    if not (root / "complete.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".quickstart-v{ASSETS_VERSION}-", dir=cache))
        try:
            _generate(staging)
            if not publish_dir(staging, root) and not (root / "complete.json").is_file():
                raise DataError(f"{root}: an incomplete quickstart asset directory is in the way; remove it")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return QuickstartAssets(
        root=root,
        train_parquet_dir=root / "parquet" / "train",
        validation_parquet_dir=root / "parquet" / "validation",
        tokenizer_dir=root / "tokenizer",
        chat_jsonl=RESOURCES / "chat.jsonl",
        preference_jsonl=RESOURCES / "preference.jsonl",
        cot_jsonl=RESOURCES / "cot.jsonl",
    )


def ensure_quickstart_shards(split: str = "train", cache_dir: str | Path | None = None) -> Path:
    """The embedded corpus split preprocessed into token shards (through the real preprocess
    path, on first use, under a file lock so concurrent ranks wait for one writer)."""
    import fcntl

    from argonne_kit.data.manifest import MANIFEST_NAME
    from argonne_kit.data.preprocess import preprocess

    assets = ensure_quickstart_assets(cache_dir)
    out = assets.root / "shards" / split
    if not (out / MANIFEST_NAME).is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(assets.root / "shards" / f".{split}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (out / MANIFEST_NAME).is_file():
                parquet = assets.train_parquet_dir if split == "train" else assets.validation_parquet_dir
                preprocess(parquet, str(assets.tokenizer_dir), out, progress=False, log=lambda _msg: None)
    return out


def train_bpe_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE ``transformers`` tokenizer trained on ``texts`` (deterministic): specials
    ``<|endoftext|>``=0, ``<|im_start|>``=1, ``<|im_end|>``=2, ``<think>``/``</think>`` as added
    tokens, ``<|endoftext|>`` as EOS and pad, no BOS, and a ChatML chat template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", chat_template=CHATML_TEMPLATE
    )


def _chat_texts() -> list[str]:
    """The shipped chat samples rendered as ChatML text, so the tokenizer learns the role words."""
    texts = []
    for path in (RESOURCES / "chat.jsonl", RESOURCES / "cot.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            messages = json.loads(line)["messages"]
            texts.append("".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages))
    return texts


def _generate(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    train = quickstart_corpus.generate(TRAIN_DOCS, CORPUS_SEED)
    validation = quickstart_corpus.generate(VALIDATION_DOCS, VALIDATION_SEED)
    tokenizer = train_bpe_tokenizer(train + _chat_texts())
    tokenizer.save_pretrained(str(root / "tokenizer"))

    def write(docs: list[str], split: str, files: int) -> None:
        out = root / "parquet" / split
        out.mkdir(parents=True)
        per_file = -(-len(docs) // files)
        for index in range(files):
            part = docs[index * per_file : (index + 1) * per_file]
            name = f"{split}-{index:05d}.parquet"
            counts = [len(ids) for ids in tokenizer(part, add_special_tokens=False)["input_ids"]]
            table = pa.table(
                {
                    "text": part,
                    "id": [f"<urn:argonne-kit:quickstart:{split}:{index}:{i}>" for i in range(len(part))],
                    "dump": ["argonne-kit-quickstart"] * len(part),
                    "url": [f"https://argonne-kit.invalid/quickstart/{split}/{index}/{i}" for i in range(len(part))],
                    "date": ["2026-01-01T00:00:00Z"] * len(part),
                    "file_path": [name] * len(part),
                    "language": ["en"] * len(part),
                    "language_score": pa.array([1.0] * len(part), pa.float64()),
                    "token_count": pa.array(counts, pa.int64()),
                }
            )
            pq.write_table(table, out / name, row_group_size=500)

    write(train, "train", TRAIN_FILES)
    write(validation, "validation", 1)
    (root / "complete.json").write_text(json.dumps({"version": ASSETS_VERSION}) + "\n")
