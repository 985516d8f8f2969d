"""``torch.compile`` on CPU: training-step time compiled vs eager, and the compile time itself.

Shapes: ``quickstart`` (recipes/quickstart.toml: d 192, 4 layers, vocab 2,048, T 128, 8 rows) and
``20m`` (the Qwen3-shaped ~18.9M model of model_vs_hf.py: d 384, 8 layers, vocab 16,384, T 1024,
2 rows). The model is wrapped by the kit's ``single`` strategy exactly as a run does with
``train.compile = true`` (WrapOptions(compile=True)); a step is forward, next-token CE, backward,
AdamW, ``zero_grad``. The compile time is the wall time of the first compiled step minus an eager
step (a fresh inductor cache directory unless ``--warm-cache``). Steady-state steps of the eager
model, the compiled model and (``--control``) a second eager copy alternate in ABBA order.

    python benchmarks/compile_cpu.py [--shape quickstart,20m] [--reps 4] [--threads 1] [--clock cpu|wall]
        [--control] [--warm-cache]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import abba, clock, host_line, ratio_table

SHAPES = {
    "quickstart": dict(
        config=dict(
            vocab_size=2048,
            hidden_size=192,
            num_hidden_layers=4,
            num_attention_heads=6,
            num_key_value_heads=2,
            intermediate_size=512,
            qk_norm=True,
            v_norm=True,
            sandwich_norm=True,
            logit_softcap=15.0,
            interleaved_local_attention=False,
        ),
        seq=128,
        batch=8,
    ),
    "20m": dict(
        config=dict(
            vocab_size=16384,
            hidden_size=384,
            num_hidden_layers=8,
            num_attention_heads=6,
            num_key_value_heads=2,
            intermediate_size=1024,
            qk_norm=True,
            v_norm=False,
            sandwich_norm=False,
            logit_softcap=0.0,
            interleaved_local_attention=False,
        ),
        seq=1024,
        batch=2,
    ),
}


def build(shape: dict, compile: bool):
    import torch

    from argonne_kit.contracts.parallel import WrapOptions
    from argonne_kit.model import ArgonneConfig, ArgonneForCausalLM
    from argonne_kit.registry import get_registry

    component = get_registry().get("parallel", "single")
    strategy = component.factory(component.config_cls())
    strategy.setup("cpu")
    torch.manual_seed(0)
    model = ArgonneForCausalLM(
        ArgonneConfig(
            **shape["config"], max_position_embeddings=max(shape["seq"], 256), rope_theta=1e6, tie_word_embeddings=True
        )
    )
    model = strategy.wrap(model, WrapOptions(compile=compile))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4)


def step(model, optimizer, batch) -> None:
    import torch.nn.functional as F

    logits = model(input_ids=batch[:, :-1]).logits
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(name: str, shape: dict, reps: int, tick, control: bool) -> None:
    import torch

    batch = torch.randint(
        0, shape["config"]["vocab_size"], (shape["batch"], shape["seq"] + 1), generator=torch.Generator().manual_seed(1)
    )
    rows = {"eager": build(shape, False)}
    if control:
        rows["eager (A/A control)"] = build(shape, False)
    wall = time.perf_counter
    start = wall()
    step(*rows["eager"], batch)
    eager_first = wall() - start
    compiled = build(shape, True)
    start = wall()
    step(*compiled, batch)
    compile_s = wall() - start - eager_first
    rows["compiled"] = compiled
    for pair in rows.values():  # one more untimed step each: the compiled graph's second call, caches
        step(*pair, batch)
    times: dict[str, list[float]] = {n: [] for n in rows}
    for _rep, row in abba(list(rows), reps):
        start = tick()
        step(*rows[row], batch)
        times[row].append(tick() - start)
    tokens = shape["batch"] * shape["seq"]
    print(
        f"{name}: {sum(p.numel() for p in rows['eager'][0].parameters()):,} params, {shape['batch']} × T "
        f"{shape['seq']} = {tokens:,} tokens/step; compile time {compile_s:.1f} s wall (first compiled step "
        f"minus an eager step)"
    )
    print("  step time, ms (min / median; ratio vs eager: of min / of median / paired; < 1 = compiled faster)")
    print("\n".join(ratio_table({n: [t * 1e3 for t in v] for n, v in times.items()}, "eager", "ms")), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="quickstart,20m", help=f"comma-separated, from {sorted(SHAPES)}")
    parser.add_argument("--reps", type=int, default=4, help="timed steps per row, ABBA order (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    parser.add_argument("--control", action="store_true", help="also time a second eager copy (A/A)")
    parser.add_argument("--warm-cache", action="store_true", help="keep inductor's default cache directory")
    args = parser.parse_args()
    shapes = [s for s in args.shape.split(",") if s]
    if set(shapes) - set(SHAPES):
        parser.error(f"--shape: choose from {sorted(SHAPES)}")
    cache = None
    if not args.warm_cache:
        cache = tempfile.TemporaryDirectory()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name  # a cold compile: nothing reused from earlier runs
    import torch

    torch.set_num_threads(args.threads)
    print(host_line(args.threads))
    print(f"{args.clock} clock for steps; inductor cache {'warm' if args.warm_cache else 'cold (fresh directory)'}")
    for name in shapes:
        measure(name, SHAPES[name], args.reps, clock(args.clock), args.control)
    if cache is not None:
        cache.cleanup()


if __name__ == "__main__":
    main()
