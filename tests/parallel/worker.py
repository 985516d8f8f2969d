"""torchrun worker: ``worker.py SCENARIO WORKDIR``. Runs the checks of one scenario against
``WORKDIR/reference.pt`` and writes ``WORKDIR/SCENARIO.json`` from rank 0. Ends with barrier →
destroy → flush → ``os._exit(0)`` (gloo can abort at interpreter exit)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import harness

import argonne_plugins.parallel.tp as tp_module
from argonne_kit.contracts.parallel import WrapOptions
from argonne_plugins.parallel.configs import DDPConfig, FSDPConfig, TPConfig
from argonne_plugins.parallel.ddp import DDPStrategy
from argonne_plugins.parallel.fsdp import FSDPStrategy
from argonne_plugins.parallel.tp import TPStrategy

# Imported directly rather than through the registry: loading every plugin costs each worker
# seconds (test_strategies.py checks the registered names separately).
STRATEGIES = {
    "ddp": (DDPStrategy, DDPConfig),
    "fsdp": (FSDPStrategy, FSDPConfig),
    "tp": (TPStrategy, TPConfig),
}


def make_strategy(kind: str, **config):
    factory, config_cls = STRATEGIES[kind]
    strategy = factory(config_cls(**config))
    strategy.setup("cpu")
    return strategy


def check(strategy, workdir: str, name: str, ref: dict, options: WrapOptions | None = None, loads=()) -> dict:
    """Train 5 steps (2 micro-batches, no_sync on the first), save after step 3, compare with the
    reference; then resume from our own checkpoint and from each of ``loads``."""
    options = options or WrapOptions()
    model = strategy.wrap(harness.build_model(), options)
    optimizer = harness.build_optimizer(model)
    record: dict = {"losses": [], "norms": []}
    ckpt = os.path.join(workdir, f"{name}_step3")
    for step in range(harness.STEPS):
        loss, norm = harness.train_step_with_grads(strategy, model, optimizer, step, record, micro_batches=2)
        record["losses"].append(loss)
        record["norms"].append(norm)
        if step + 1 == harness.SAVE_AFTER:
            strategy.save(strategy.state_dicts(model, optimizer), ckpt)
    weights = strategy.full_model_state_dict(model)
    out = {
        "loss": max(abs(a - b) for a, b in zip(record["losses"], ref["losses"])),
        "norm": max(abs(a - b) for a, b in zip(record["norms"], ref["norms"])),
        "grads0": harness.max_diff(record["grads0"], ref["grads0"]),
        "grads0_names": sorted(record["grads0"]) == sorted(ref["grads0"]),
        "dp": [strategy.dp_rank, strategy.dp_world],
    }
    if strategy.is_main:
        out["weights"] = harness.max_diff(weights, ref["weights"])
        out["tied_alias"] = weights["lm_head.weight"] is weights["model.embed_tokens.weight"]
        out["worst_grad"] = max(
            ref["grads0"], key=lambda k: (record["grads0"][k] - ref["grads0"][k]).abs().max().item()
        )
    for source in (ckpt, *loads):
        out[f"resume:{os.path.basename(source)}"] = resume(strategy, source, options, ref, record)
    return out


def resume(strategy, path: str, options, ref: dict, own: dict) -> dict:
    """Load ``path`` (written by any strategy at step 3) into a fresh model and finish the run."""
    model = strategy.wrap(harness.build_model(), options)
    optimizer = harness.build_optimizer(model)
    # Perturb the fresh weights so that a load that silently did nothing cannot pass.
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.5)
    extras = strategy.load(model, optimizer, path)
    losses = [
        harness.train_step(strategy, model, optimizer, step, micro_batches=2)[0]
        for step in range(harness.SAVE_AFTER, harness.STEPS)
    ]
    weights = strategy.full_model_state_dict(model)
    out = {
        "loss_vs_ref": max(abs(a - b) for a, b in zip(losses, ref["losses"][harness.SAVE_AFTER :])),
        "loss_vs_own": max(abs(a - b) for a, b in zip(losses, own["losses"][harness.SAVE_AFTER :])),
        "extras": extras,
    }
    if strategy.is_main:
        out["weights"] = harness.max_diff(weights, ref["weights"])
    return out


def scenario_ddp(workdir, ref):
    strategy = make_strategy("ddp", timeout_s=60)
    return strategy, {"ddp": check(strategy, workdir, "ddp", ref, loads=[os.path.join(workdir, "single_step3")])}


def scenario_fsdp(workdir, ref):
    strategy = make_strategy("fsdp", timeout_s=60)
    loads = [p for p in [os.path.join(workdir, "tp_step3")] if os.path.isdir(p)]
    results = {"fsdp": check(strategy, workdir, "fsdp", ref, WrapOptions(activation_checkpointing=True), loads=loads)}
    # SHARD_GRAD_OP (reshard_after_forward = false): same numbers.
    strategy.config.reshard_after_forward = False
    results["fsdp_no_reshard"] = check(strategy, workdir, "fsdp_no_reshard", ref)
    # bf16 parameters for compute, fp32 reduction and master weights: runs, close to fp32.
    strategy.config.reshard_after_forward, strategy.config.mixed_precision = True, True
    model = strategy.wrap(harness.build_model(), WrapOptions(param_dtype=torch.bfloat16))
    optimizer = harness.build_optimizer(model)
    losses = [harness.train_step(strategy, model, optimizer, s)[0] for s in range(harness.STEPS)]
    results["fsdp_bf16"] = {
        "loss": max(abs(a - b) for a, b in zip(losses, ref["losses"])),
        "param_dtype": str(next(model.parameters()).dtype),
    }
    return strategy, results


def scenario_tp(workdir, ref):
    strategy = make_strategy("tp", degree=2, timeout_s=60)
    results = {
        "tp": check(
            strategy,
            workdir,
            "tp",
            ref,
            WrapOptions(activation_checkpointing=True),
            loads=[os.path.join(workdir, "single_step3")],
        )
    }
    # Negative control (P4): without reducing the QK-norm gradients, they are partial sums.
    saved, tp_module.HEAD_NORMS = tp_module.HEAD_NORMS, ()
    try:
        model = strategy.wrap(harness.build_model(), WrapOptions())
        record: dict = {}
        harness.train_step_with_grads(strategy, model, harness.build_optimizer(model), 0, record, micro_batches=2)
    finally:
        tp_module.HEAD_NORMS = saved
    results["tp_without_qk_norm_fix"] = {
        name: harness.max_diff({name: record["grads0"][name]}, {name: ref["grads0"][name]})
        for name in ref["grads0"]
        if ".attn." in name and "norm" in name
    }
    return strategy, results


def scenario_dp_tp(workdir, ref):
    strategy = make_strategy("tp", degree=2, timeout_s=60)
    return strategy, {"dp_tp": check(strategy, workdir, "dp_tp", ref, loads=[os.path.join(workdir, "fsdp_step3")])}


def scenario_dies(workdir, ref):
    """Rank 1 is killed (or hangs, with ``hang`` in WORKDIR's name) after one step; rank 0 keeps
    training and must fail with an error, not hang."""
    strategy = make_strategy("ddp", timeout_s=float(os.environ.get("TEST_TIMEOUT_S", "5")))
    model = strategy.wrap(harness.build_model(), WrapOptions())
    optimizer = harness.build_optimizer(model)
    harness.train_step(strategy, model, optimizer, 0)
    if strategy.rank == 1:
        if os.environ.get("TEST_FAILURE") == "hang":
            time.sleep(120)
        os.kill(os.getpid(), signal.SIGKILL)
    start = time.time()
    try:
        for step in range(1, 1000):
            harness.train_step(strategy, model, optimizer, step % harness.STEPS)
    except Exception as exc:  # what a trainer would see: an error raised by the collective
        with open(os.path.join(workdir, "dies.json"), "w") as f:
            json.dump({"error": f"{type(exc).__name__}: {exc}"[:500], "seconds": time.time() - start}, f)
        raise
    return strategy, {}


def main() -> None:
    scenario, workdir = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    ref = torch.load(os.path.join(workdir, "reference.pt"), weights_only=False)
    strategy, results = globals()[f"scenario_{scenario}"](workdir, ref)
    if strategy.is_main:
        results["world_size"] = strategy.world_size
        with open(os.path.join(workdir, f"{scenario}.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    strategy.teardown()
    os._exit(0)


if __name__ == "__main__":
    main()
