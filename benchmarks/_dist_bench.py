"""Shared by the benchmarks: launch this interpreter under torchrun and time training steps of an
``ArgonneForCausalLM`` through a registered parallel strategy (the same code path as a run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def launch(script: str, nproc: int, args: list[str], threads: int | None = None) -> dict:
    """Run ``script --worker ARGS`` under ``torchrun --standalone`` and return rank 0's JSON line."""
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        script,
        "--worker",
        *args,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"{' '.join(cmd)} produced no result (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )


def time_training(
    config,
    seq_len: int,
    micro_batch: int,
    steps: int,
    warmup: int,
    strategy_name: str = "ddp",
    device: str = "auto",
    precision: str = "fp32",
    compile: bool = False,
    activation_checkpointing: bool = False,
) -> dict:
    """Worker side: build the model (an ``ArgonneConfig``), wrap it with the strategy, train ``warmup + steps`` AdamW
    steps on random tokens and return tokens/s over the timed steps (global over all ranks)."""
    from argonne_kit.contracts.parallel import WrapOptions
    from argonne_kit.model import ArgonneForCausalLM
    from argonne_kit.registry import get_registry

    component = get_registry().get("parallel", strategy_name)
    strategy = component.factory(component.config_cls())
    strategy.setup(device)
    torch.manual_seed(0)
    model = ArgonneForCausalLM(config)
    vocab = model.config.vocab_size
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    model = strategy.wrap(
        model, WrapOptions(activation_checkpointing=activation_checkpointing, compile=compile, param_dtype=dtype)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=strategy.device.type == "cuda")
    batch = torch.randint(0, vocab, (micro_batch, seq_len + 1), device=strategy.device)
    autocast = torch.autocast(strategy.device.type, dtype=dtype, enabled=dtype is not None)

    def step():
        with autocast:
            logits = model(input_ids=batch[:, :-1]).logits
            loss = F.cross_entropy(logits.float().reshape(-1, vocab), batch[:, 1:].reshape(-1))
        loss.backward()
        strategy.clip_grad_norm(model, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    for _ in range(warmup):
        step()
    _sync(strategy.device)
    strategy.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    _sync(strategy.device)
    strategy.barrier()
    seconds = time.perf_counter() - start
    tokens = steps * micro_batch * seq_len * strategy.dp_world
    result = {
        "world_size": strategy.world_size,
        "tokens_per_s": tokens / seconds,
        "step_s": seconds / steps,
        "device": str(strategy.device),
    }
    if strategy.device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(strategy.device)
        result["max_memory_gib"] = torch.cuda.max_memory_allocated(strategy.device) / 2**30
    if strategy.is_main:
        print("RESULT " + json.dumps(result), flush=True)
    strategy.teardown()
    return result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
