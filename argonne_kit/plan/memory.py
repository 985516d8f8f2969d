"""Per-GPU memory of one training step, by component.

Bytes per token saved for backward by one argonne2 block are linear in the widths (d, the KV
width, the MLP width, the head counts). The coefficients below count the tensors the kit's
block keeps for backward — RMSNorm input/rstd/output, the flattened inputs of the projections,
the attention kernel's q/k/v/output/log-sum-exp, the clamped SwiGLU inputs and their masks —
in fp32 and under bf16/fp16 autocast (where matmul inputs and outputs are 2-byte, norms and
the residual stream stay fp32). ``tests/plan/test_memory.py`` checks them against the tensors
a real forward saves, and the whole prediction against the measured peak of a step.

Peak model of a step (per GPU, steady state: optimizer state exists, gradients were freed by
``zero_grad(set_to_none=True)``):

- weights (fp32 master copy), AdamW moments (2 × fp32) and, for DDP, the gradient buckets
  (one more fp32 copy of the gradients that DDP keeps between steps) are always live;
- forward: every block's saved activations (only the block input for a checkpointed block),
  the final norm, and the logits path (full logits and log-probabilities; with chunked
  cross-entropy nothing of size V);
- backward sweeps from the loss to the embedding: gradients grow while activations are freed;
  the loss backward holds two fp32 ``[tokens, V]`` gradients (one chunk's worth when chunked);
  a checkpointed block is recomputed (its activations live again) while it runs;
- the optimizer step holds every gradient.

FSDP divides weights, gradients and optimizer state by the world size and adds the gathered
parameters of the block being computed (the root's embedding/head stays gathered); TP divides
the blocks' weights and activations by the degree.
"""

from __future__ import annotations

import attrs

from argonne_kit.contracts.config import MemoryLayout
from argonne_kit.plan.shape import ModelShape

GIB = 2**30


@attrs.frozen
class StepSetup:
    """What shapes one training step besides the model."""

    micro_batch_size: int
    seq_len: int
    precision: str = "bf16"
    """fp32, or bf16/fp16 autocast."""
    activation_checkpointing: bool = False
    checkpoint_every: int = 1
    loss_chunk_size: int = 0
    strategy: str = "single"
    """The parallel strategy's name (reported, not interpreted: ``layout`` says what it does)."""
    world_size: int = 1
    layout: MemoryLayout = attrs.field(factory=MemoryLayout)
    """How the strategy places the model's state on each process (its config's ``memory_layout``)."""
    reference_model: bool = False
    """A frozen reference model (DPO without precomputed scores) lives beside the policy."""
    reference_precomputed: bool = False
    """The reference scores the data before the loop and is freed: it counts only then."""
    optimizer_temporaries: bool = False
    """The optimizer step allocates one temporary of the largest parameter (non-fused AdamW on
    CPU); fused AdamW on CUDA allocates none."""


def block_activation_bytes(shape: ModelShape, precision: str) -> float:
    """Bytes per token one block saves for backward (see the module docstring)."""
    d, kv, f, h, n_kv = shape.hidden_size, shape.kv_width, shape.intermediate_size, shape.num_heads, shape.num_kv_heads
    qk, vn, sw = int(shape.qk_norm), int(shape.v_norm), int(shape.sandwich_norm)
    # clamped SwiGLU (one autograd node) keeps gate and up; plain autograd also keeps silu(gate)
    mlp = 3 if shape.swiglu_clamp else 4
    if precision == "fp32":
        per = (
            (32 + 8 * qk + 16 * sw) * d
            + (8 + 8 * qk + 8 * vn) * kv
            + 4 * mlp * f
            + (4 + 4 * qk) * h
            + (4 * qk + 4 * vn) * n_kv
            + 8
            + 8 * sw
        )
    else:
        per = (
            (30 + 6 * qk + 12 * sw) * d
            + (4 + 6 * qk + 6 * vn) * kv
            + 2 * mlp * f
            + (4 + 4 * qk) * h
            + (4 * qk + 4 * vn) * n_kv
            + 8
            + 8 * sw
        )
    if shape.swiglu_clamp:
        per += 2 * f  # two one-byte in-range masks
    return float(per)


#: Chunk size of the "chunked" alternative the plan shows next to the recipe's own setting.
CHUNK_EXAMPLE = 4096


def logits_bytes(tokens: int, vocab: int, width: int, low: bool, chunk: int) -> tuple[float, float]:
    """(saved for backward, extra during the loss backward) of the LM head and cross-entropy.
    Full: the logits (2-byte under autocast, plus its 2-byte head-weight copy) and the fp32
    log-probabilities are saved, and the loss backward holds two fp32 ``[tokens, V]``
    gradients. Chunked: nothing of size V is saved; one chunk of logits, log-probabilities and
    their gradients is alive at a time — recomputed in backward on the generic path, computed in
    the loss forward on the fused one (plain heads; it needs at most this much: one fp32 chunk,
    one more with the softcap, and the chunk's gradient in the compute dtype)."""
    if chunk:
        return 0.0, min(chunk, tokens) * vocab * 16.0
    saved = tokens * vocab * ((2 + 4) if low else 8) + (2.0 * vocab * width if low else 0.0)
    return saved, tokens * vocab * 8.0


def block_linear_params(shape: ModelShape) -> int:
    """Weights of one block's projections (q, k, v, o, gate, up, down)."""
    d, kv, f = shape.hidden_size, shape.kv_width, shape.intermediate_size
    return 2 * d * d + 2 * d * kv + 3 * d * f


@attrs.frozen
class MemoryPlan:
    """Per-GPU bytes by component and the predicted peak."""

    components: dict[str, float]
    """Component → bytes (what each contributes at the moment of the peak, or its size)."""
    peak: float
    """Predicted peak bytes of a training step on one GPU."""
    peak_phase: str
    """Where the peak falls: forward end / loss backward / block backward / optimizer step."""


def plan_memory(shape: ModelShape, params: int, setup: StepSetup) -> MemoryPlan:
    """The per-GPU memory of one training step (see the module docstring)."""
    if shape.family != "argonne2":
        raise ValueError("the memory model covers the argonne2 family (2.0 and later)")
    low = setup.precision != "fp32"
    tokens = setup.micro_batch_size * setup.seq_len
    d, v, layers = shape.hidden_size, shape.vocab_size, shape.num_layers
    tp = max(1, setup.layout.tensor_parallel)
    shards = max(1, setup.layout.parameter_shards)
    block_params = block_linear_params(shape)
    root_params = params - layers * block_params  # embedding/head and norms (norms are tiny)
    local_params = (root_params + layers * block_params / tp) / shards

    weights = 4.0 * local_params
    grads_full = 4.0 * local_params
    optimizer = 8.0 * local_params
    buckets = grads_full if setup.layout.gradient_buckets else 0.0
    gathered = 0.0
    if shards > 1:
        # FSDP: the root stays gathered after forward; one block is gathered while it computes
        # (two during prefetch), in the compute dtype under mixed precision, else fp32
        gathered = 4.0 * root_params * (1 - 1 / shards) + 2 * 4.0 * block_params / tp

    per_block = block_activation_bytes(shape, setup.precision) * tokens / tp
    block_input = 4.0 * d * tokens  # the fp32 residual stream a checkpointed block keeps
    checkpointed = [setup.activation_checkpointing and i % setup.checkpoint_every == 0 for i in range(layers)]
    saved_blocks = [block_input if c else per_block for c in checkpointed]
    # autocast keeps a 2-byte copy of every weight a matmul used until its backward
    weight_copies = [0.0 if c or not low else 2.0 * block_params / tp for c in checkpointed]
    final_norm = (8.0 * d + 4) * tokens + 8.0 * tokens  # norm input/output/rstd and the ids
    logits_saved, logits_backward = logits_bytes(tokens, v, d, low, setup.loss_chunk_size)
    always = weights + optimizer + buckets + gathered
    forward_end = sum(saved_blocks) + sum(weight_copies) + final_norm + logits_saved
    phases = {"forward end": forward_end, "loss backward": forward_end + logits_backward}
    # the backward sweep: gradients accumulate while the blocks' saved tensors are freed
    live_acts = sum(saved_blocks) + sum(weight_copies)
    # the head's gradient exists from the loss backward on; an untied embedding's only at the end
    grads = 4.0 * (root_params - (0 if shape.tie_embeddings else v * d)) / shards
    sweep = 0.0
    for i in reversed(range(layers)):
        recompute = per_block if checkpointed[i] else 0.0
        # while block i runs backward: its saved tensors (recomputed if checkpointed), the gradient
        # of its output and input (fp32 residual stream), and its new weight gradients
        running = live_acts + recompute + 2 * block_input + grads + 4.0 * block_params / tp / shards
        sweep = max(sweep, running)
        live_acts -= saved_blocks[i] + weight_copies[i]
        grads += 4.0 * block_params / tp / shards
    phases["block backward"] = sweep
    largest = max(v * d, shape.intermediate_size * d) / tp / shards
    phases["optimizer step"] = grads_full + (4.0 * largest if setup.optimizer_temporaries else 0.0)
    phase = max(phases, key=phases.__getitem__)
    peak = always + phases[phase]

    components = {
        "weights (fp32)": weights,
        "gradients (fp32)": grads_full,
        "optimizer state (AdamW, fp32)": optimizer,
        "activations": sum(saved_blocks) + final_norm,
        "activations, no checkpointing": per_block * layers + final_norm,
        "activations, checkpointing every block": block_input * layers + per_block + final_norm,
        "autocast weight copies": sum(weight_copies),
        "logits / loss": logits_saved + logits_backward,
        "logits / loss, full": sum(logits_bytes(tokens, v, d, low, 0)),
        f"logits / loss, chunked ({CHUNK_EXAMPLE} rows)": sum(logits_bytes(tokens, v, d, low, CHUNK_EXAMPLE)),
    }
    if buckets:
        components["DDP gradient buckets"] = buckets
    if gathered:
        components["FSDP gathered parameters"] = gathered
    if setup.reference_model:
        reference = 4.0 * local_params
        components["DPO reference model"] = reference
        if not setup.reference_precomputed:
            peak += reference
    return MemoryPlan(components=components, peak=peak, peak_phase=phase)
