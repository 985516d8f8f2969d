"""Preprocess throughput vs the raw ``tokenizers`` ``encode_batch`` on the same text.

Runs ``argonne_kit.data.preprocess.preprocess`` (parquet read → tokenize → uint32 shards +
manifest) over a parquet corpus and, in the same process, the tokenizer's own ``encode_batch`` on
the same texts already in memory (chunks of the same size). Prints tokens/s of both and their
ratio (the target is ≥ 0.9).

    python benchmarks/preprocess_throughput.py [--copies 4] [--tokenizer PATH] [--repeats 3]

Default corpus: the embedded quickstart corpus, written ``--copies`` times as separate parquet
files; default tokenizer: the embedded one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from argonne_kit.data.embedded import ensure_quickstart_assets
from argonne_kit.data.preprocess import DEFAULT_BATCH_ROWS, preprocess
from argonne_kit.data.tokenizer import load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="copies of the quickstart corpus to tokenize")
    parser.add_argument("--tokenizer", default=None, help="tokenizer path or Hub id (default: embedded)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (best is reported)")
    args = parser.parse_args()

    assets = ensure_quickstart_assets()
    work = Path(tempfile.mkdtemp(prefix="argonne-bench-"))
    try:
        corpus = work / "parquet"
        corpus.mkdir()
        texts: list[str] = []
        for copy in range(args.copies):
            for source in sorted(assets.train_parquet_dir.glob("*.parquet")):
                shutil.copy(source, corpus / f"{copy:03d}-{source.name}")
                texts += pq.read_table(source, columns=["text"]).column("text").to_pylist()
        hf_tokenizer, _ = load_tokenizer(args.tokenizer)
        backend = hf_tokenizer.backend_tokenizer

        raw_best, tokens = float("inf"), 0
        for _ in range(args.repeats):
            start = time.perf_counter()
            tokens = 0
            for i in range(0, len(texts), DEFAULT_BATCH_ROWS):
                tokens += sum(
                    len(e.ids)
                    for e in backend.encode_batch(texts[i : i + DEFAULT_BATCH_ROWS], add_special_tokens=False)
                )
            raw_best = min(raw_best, time.perf_counter() - start)

        pre_best, written = float("inf"), 0
        for repeat in range(args.repeats):
            out = work / f"out{repeat}"
            start = time.perf_counter()
            manifest = preprocess(corpus, args.tokenizer, out, progress=False, log=lambda _m: None)
            pre_best = min(pre_best, time.perf_counter() - start)
            written = manifest["totals"]["tokens"] - manifest["totals"]["docs"]  # without the EOS separators
            shutil.rmtree(out)
        assert written == tokens, (written, tokens)
        raw_rate, pre_rate = tokens / raw_best, tokens / pre_best
        print(f"corpus: {len(texts):,} documents, {tokens:,} tokens ({args.copies} copies of the quickstart corpus)")
        print(f"tokenizers encode_batch (text in memory): {raw_rate / 1e6:.3f} M tokens/s ({raw_best:.2f} s)")
        print(f"argonne-kit preprocess (parquet → shards): {pre_rate / 1e6:.3f} M tokens/s ({pre_best:.2f} s)")
        print(f"ratio preprocess / encode_batch: {pre_rate / raw_rate:.3f} (target ≥ 0.9)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
