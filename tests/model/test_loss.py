"""Losses: HF label convention (shifted inside), chunked CE == plain, z-loss and MTP terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from model_fixtures import VOCAB

from argonne_kit.loss import causal_lm_loss, lm_loss_sums

IDS = torch.randint(0, VOCAB, (3, 16), generator=torch.Generator().manual_seed(8))


def test_labels_are_shifted_inside(make_model):
    model = make_model()
    labels = IDS.clone()
    labels[1, :5] = -100
    with torch.no_grad():
        out = model(IDS, labels=labels)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)


def test_z_loss_and_mtp_terms(make_model):
    model = make_model(z_loss_weight=1e-2, mtp_horizon=3, mtp_loss_weight=0.5)
    with torch.no_grad():
        out = model(IDS, labels=IDS)
    logits = out.logits
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), IDS[:, 1:].reshape(-1))
    z = torch.logsumexp(logits[:, :-1], dim=-1).pow(2).mean()
    mtp = torch.stack(
        [F.cross_entropy(logits[:, :-h].reshape(-1, VOCAB), IDS[:, h:].reshape(-1)) / h for h in (2, 3)]
    ).mean()
    torch.testing.assert_close(out.loss, ce + 1e-2 * z + 0.5 * mtp)


def test_chunked_cross_entropy_equals_plain_path(make_model):
    torch.manual_seed(0)
    labels = IDS.clone()
    labels[0, 3:9] = -100
    losses, grads = [], []
    for chunk in (0, 7):
        model = make_model(loss_chunk_size=chunk, z_loss_weight=1e-3).train()
        out = model(IDS, labels=labels)
        assert (out.logits is None) == (chunk > 0)
        out.loss.backward()
        losses.append(out.loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-7)


def test_lm_loss_sums_never_builds_full_logits(make_model):
    model = make_model()
    hidden = model(IDS, output_hidden_states=True, return_logits=False).hidden_states[-1]
    rows = []

    def head(h):
        rows.append(h.shape[0])
        return model.logits_from_hidden(h)

    nll, z, count = lm_loss_sums(hidden[:, :-1], head, IDS[:, 1:], chunk_size=10, with_z=True)
    assert max(rows) == 10 and int(count) == 3 * 15
    plain = causal_lm_loss(model.logits_from_hidden(hidden), IDS, z_loss_weight=1.0)
    torch.testing.assert_close(((nll + z) / count).detach(), plain.detach(), rtol=1e-6, atol=1e-6)


def test_v1_labels_follow_the_same_convention(make_v1_model):
    model = make_v1_model()
    with torch.no_grad():
        out = model(IDS, labels=IDS)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), IDS[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)
