"""Fused chunked cross-entropy (``fused_lm_loss_sums`` via ``chunked_loss_sums``): the same loss and
gradients as the full-logits path, one chunk of logits and one weight gradient alive, and the
generic path kept for heads the fused one must not bypass."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import VOCAB
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from argonne_kit.loss import combine_loss_sums, fused_lm_loss_sums, logit_loss_sums

IDS = torch.randint(0, VOCAB, (3, 16), generator=torch.Generator().manual_seed(8))


class CreatedTensors(TorchDispatchMode):
    """Records the rows of every contiguous ``[..., VOCAB]`` result (logits, softmax, their
    gradients) and ``(op, storage)`` of every ``[VOCAB, d]`` result (weight-gradient terms)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.logit_rows: list[int] = []
        self.weight_sized: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.is_contiguous():
                if t.size(-1) == VOCAB:
                    self.logit_rows.append(t.numel() // VOCAB)
                if tuple(t.shape) == (VOCAB, self.hidden_size):
                    self.weight_sized.append((str(func), t.untyped_storage().data_ptr()))
        return out


def _labels() -> torch.Tensor:
    labels = IDS.clone()
    labels[0, 3:9] = -100  # ignored rows inside a chunk
    labels[2, :] = -100  # and whole chunks of them
    return labels


def _spy_generic(model) -> list[int]:
    """Rows of every ``logits_from_hidden`` call (the generic chunked path calls it per chunk)."""
    rows: list[int] = []
    original = model.logits_from_hidden
    model.logits_from_hidden = lambda h: rows.append(h.reshape(-1, h.size(-1)).size(0)) or original(h)
    return rows


def _loss_and_grads(model, chunk: int, z_weight: float):
    """Loss sum and gradients (every parameter, the hidden states) of the chunked path
    (``chunk > 0``) or of the full logits (``chunk = 0``)."""
    model.zero_grad(set_to_none=True)
    hidden = model(IDS, output_hidden_states=True, return_logits=False).hidden_states[-1][:, :-1]
    hidden.retain_grad()
    targets = _labels()[:, 1:]
    if chunk:
        loss, nll, z, count = model.chunked_loss_sums(hidden, targets, chunk, z_weight)
    else:
        flat = model.logits_from_hidden(hidden).reshape(-1, VOCAB)
        loss, nll, z, count = combine_loss_sums(*logit_loss_sums(flat, targets.reshape(-1), z_weight > 0), z_weight)
    (loss / count).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return loss.detach(), nll, z, count, hidden.grad, grads


@pytest.mark.parametrize("softcap", [15.0, None])
@pytest.mark.parametrize("z_weight", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [7, 64])  # 7 does not divide the 45 rows; 64 is one chunk
def test_fused_equals_full_logits_fp32(make_model, softcap, z_weight, chunk):
    model = make_model(final_logit_softcapping=softcap).train()
    assert model.fusable_head_weight() is model.model.embed_tokens.weight  # tied, plain head
    rows = _spy_generic(model)
    full = _loss_and_grads(model, 0, z_weight)
    rows.clear()
    fused = _loss_and_grads(model, chunk, z_weight)
    assert rows == []  # the fused path never calls the head module
    for name, a, b in zip(("loss", "nll", "z", "count"), fused[:4], full[:4]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5, msg=name)
    assert (float(fused[2]) > 0) == (z_weight > 0) and int(fused[3]) == 30 - 6
    torch.testing.assert_close(fused[4], full[4], rtol=1e-5, atol=1e-6)  # d loss / d hidden
    assert fused[5].keys() == full[5].keys()
    for name in full[5]:  # the tied embedding/head weight included
        torch.testing.assert_close(fused[5][name], full[5][name], rtol=1e-5, atol=1e-6, msg=name)


def test_fused_untied_v1_head_equals_full_logits(make_v1_model):
    model = make_v1_model().eval()  # no dropout: the two runs must see the same activations
    assert model.fusable_head_weight() is model.lm_head.weight
    full, fused = _loss_and_grads(model, 0, 1e-2), _loss_and_grads(model, 5, 1e-2)
    torch.testing.assert_close(fused[0], full[0], rtol=1e-6, atol=1e-5)
    for name in full[5]:
        torch.testing.assert_close(fused[5][name], full[5][name], rtol=1e-5, atol=1e-6, msg=name)


def test_fused_bf16_hidden_matches_full_logits_loosely(make_model):
    """bf16 model: losses in fp32, gradients in bf16 (the inputs' dtype), close to the full path."""
    model = make_model(z_loss_weight=1e-2).to(torch.bfloat16).train()
    full, fused = _loss_and_grads(model, 0, 1e-2), _loss_and_grads(model, 7, 1e-2)
    assert fused[0].dtype == torch.float32 and fused[4].dtype == torch.bfloat16
    torch.testing.assert_close(fused[0], full[0], rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(fused[4].float(), full[4].float(), rtol=5e-2, atol=5e-3)
    for name in full[5]:
        assert fused[5][name].dtype == torch.bfloat16
        torch.testing.assert_close(fused[5][name].float(), full[5][name].float(), rtol=5e-2, atol=5e-3, msg=name)


def test_fused_under_bf16_autocast_keeps_fp32_weight_gradients(make_model):
    model = make_model().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        full, fused = _loss_and_grads(model, 0, 0.0), _loss_and_grads(model, 7, 0.0)
    torch.testing.assert_close(fused[0], full[0], rtol=2e-2, atol=2e-2)
    head = "model.embed_tokens.weight"
    assert fused[5][head].dtype == torch.float32
    torch.testing.assert_close(fused[5][head], full[5][head], rtol=5e-2, atol=5e-3)


@pytest.mark.parametrize("path", ["fused", "generic"])
def test_no_full_logits_and_one_weight_gradient(path):
    """Forward and backward of the loss alone: no tensor has more than a chunk of logit rows;
    the fused path creates one ``[V, d]`` weight gradient, the generic one one per chunk."""
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(45, 32, generator=gen).requires_grad_()
    weight = (0.1 * torch.randn(VOCAB, 32, generator=gen)).requires_grad_()
    targets = _labels()[:, 1:].reshape(-1)
    watch = CreatedTensors(32)
    with watch:
        if path == "fused":
            loss = fused_lm_loss_sums(hidden, weight, targets, 7, softcap=15.0, z_loss_weight=0.1)[0]
        else:
            from argonne_kit.loss import lm_loss_sums

            nll, z, _ = lm_loss_sums(hidden, lambda h: 15 * torch.tanh(h @ weight.T / 15), targets, 7, True)
            loss = nll + 0.1 * z
        loss.backward()
    assert max(watch.logit_rows) == 7
    if path == "fused":  # one buffer, accumulated in place and handed over as .grad without a copy
        assert {ptr for _, ptr in watch.weight_sized} == {weight.grad.untyped_storage().data_ptr()}
    else:  # a weight-gradient matmul per chunk (45 rows / 7 = 7 chunks), which autograd then sums
        assert sum(op == "aten.mm.default" for op, _ in watch.weight_sized) == 7


def test_fused_graph_backpropagates_once_and_no_grad_scores_only():
    hidden = torch.randn(10, 8).requires_grad_()
    weight = torch.randn(VOCAB, 8).requires_grad_()
    targets = torch.randint(0, VOCAB, (10,))
    loss = fused_lm_loss_sums(hidden, weight, targets, 4)[0]
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()
    with torch.no_grad():
        again = fused_lm_loss_sums(hidden, weight, targets, 4)
    assert not again[0].requires_grad
    torch.testing.assert_close(again[0], loss.detach())


class Float8LikeLinear(nn.Linear):
    """Stands for torchao's ``Float8Linear``: an ``nn.Linear`` subclass computing its own way."""

    def forward(self, x):
        return super().forward(x) * 1.0


class MarkedTensor(torch.Tensor):
    """Stands for a DTensor / quantized weight: a tensor subclass."""


def _plain_copy(model) -> nn.Linear:
    head = nn.Linear(model.config.hidden_size, VOCAB, bias=False)
    head.weight = model.lm_head.weight
    return head


@pytest.mark.parametrize("variant", ["float8_like_module", "tensor_subclass_weight", "forward_hook", "bias"])
def test_other_heads_keep_the_generic_path(make_model, variant):
    model = make_model(z_loss_weight=1e-2).train()
    plain = _loss_and_grads(model, 0, 1e-2)
    if variant == "float8_like_module":
        head = Float8LikeLinear(model.config.hidden_size, VOCAB, bias=False)
        head.weight = model.lm_head.weight
        model.lm_head = head
    elif variant == "tensor_subclass_weight":
        model.lm_head = _plain_copy(model)
        model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone().as_subclass(MarkedTensor))
    elif variant == "forward_hook":
        model.lm_head = _plain_copy(model)
        model.lm_head.register_forward_hook(lambda module, args, out: out)
    else:
        model.lm_head = nn.Linear(model.config.hidden_size, VOCAB, bias=True)
        model.lm_head.weight = model.model.embed_tokens.weight
        nn.init.zeros_(model.lm_head.bias)
    assert model.fusable_head_weight() is None
    rows = _spy_generic(model)
    generic = _loss_and_grads(model, 7, 1e-2)
    assert max(rows) == 7 and sum(rows) == 2 * 45  # generic: the head per chunk, again in backward
    if variant != "tensor_subclass_weight":  # the same weight: the same loss as the full logits
        torch.testing.assert_close(generic[0], plain[0], rtol=1e-6, atol=1e-5)


def test_plain_nn_linear_head_is_fused(make_model):
    model = make_model().train()
    model.lm_head = _plain_copy(model)
    assert model.fusable_head_weight() is model.lm_head.weight


@pytest.mark.parametrize("fp32_matmul", [False, True])
def test_fused_bf16_operands_either_matmul_route(fp32_matmul):
    """bf16 hidden, fp32 weight under bf16 autocast: the native bf16 GEMM and the fp32-SGEMM route
    (CPUs without bf16 GEMM) both match the full logits of the same bf16-rounded operands."""
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(45, 32, generator=gen).bfloat16().requires_grad_()
    weight = (0.3 * torch.randn(VOCAB, 32, generator=gen)).requires_grad_()
    targets = _labels()[:, 1:].reshape(-1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, nll, z, count = fused_lm_loss_sums(
            hidden, weight, targets, 7, softcap=15.0, z_loss_weight=0.1, fp32_matmul=fp32_matmul
        )
    loss.backward()
    assert hidden.grad.dtype == torch.bfloat16 and weight.grad.dtype == torch.float32
    h, w = hidden.detach().float().requires_grad_(), weight.detach().bfloat16().float().requires_grad_()
    logits = 15 * torch.tanh((h @ w.T) / 15)
    ref_nll, ref_z, ref_count = logit_loss_sums(logits, targets, True)
    (ref_nll + 0.1 * ref_z).backward()
    torch.testing.assert_close(nll, ref_nll.detach(), rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(z, ref_z.detach(), rtol=1e-2, atol=1e-2)
    assert int(count) == int(ref_count)
    torch.testing.assert_close(hidden.grad.float(), h.grad, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(weight.grad, w.grad, rtol=2e-2, atol=2e-2)
