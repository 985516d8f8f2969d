"""DynamicCache and StaticCache equal the full forward for prefill + decode (batched, left
padded, windowed layers), and ``generate(cache_implementation="static")`` works, compiled too."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import VOCAB
from transformers import DynamicCache, StaticCache

PROMPT_LENGTHS = (9, 5)
PAD = 0


def _left_padded_batch():
    gen = torch.Generator().manual_seed(4)
    width = max(PROMPT_LENGTHS)
    ids = torch.full((len(PROMPT_LENGTHS), width), PAD)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(PROMPT_LENGTHS):
        ids[row, width - n :] = torch.randint(1, VOCAB, (n,), generator=gen)
        mask[row, width - n :] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _new_cache(kind, config):
    return DynamicCache() if kind == "dynamic" else StaticCache(config=config, max_cache_len=16)


@pytest.mark.parametrize("family", ["argonne2", "argonne1"])
@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_prefill_then_decode_equals_the_full_forward(make_model, make_v1_model, kind, family):
    model = make_model(local_attention_window=3) if family == "argonne2" else make_v1_model()
    ids, mask, positions = _left_padded_batch()
    prefill = 5
    with torch.no_grad():
        full = model(ids, attention_mask=mask, position_ids=positions).logits
        cache = _new_cache(kind, model.config)
        steps = [
            model(
                ids[:, :prefill],
                attention_mask=mask[:, :prefill],
                position_ids=positions[:, :prefill],
                cache=cache,
                use_cache=True,
            ).logits
        ]
        for t in range(prefill, ids.shape[1]):
            steps.append(
                model(
                    ids[:, t : t + 1],
                    attention_mask=mask[:, : t + 1],
                    position_ids=positions[:, t : t + 1],
                    cache=cache,
                    use_cache=True,
                ).logits
            )
    real = mask.bool()
    torch.testing.assert_close(torch.cat(steps, 1)[real], full[real], rtol=0, atol=1e-5)


def test_static_cache_decode_without_a_mask(make_model):
    """No attention_mask: the offset is read from the cache before the first layer updates it."""
    model = make_model(local_attention_window=3)
    ids = torch.randint(1, VOCAB, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids).logits
        cache = StaticCache(config=model.config, max_cache_len=12)
        steps = [model(ids[:, :6], cache=cache, use_cache=True).logits]
        steps += [model(ids[:, t : t + 1], cache=cache, use_cache=True).logits for t in (6, 7)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-5)


def test_generate_with_a_static_cache_equals_dynamic(make_model):
    model = make_model(local_attention_window=3)
    ids, mask, _ = _left_padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=PAD)
    dynamic = model.generate(ids, **kwargs)
    assert torch.equal(model.generate(ids, cache_implementation="static", **kwargs), dynamic)


@pytest.mark.slow  # one torch.compile (aot_eager: the cheapest backend on CPU)
def test_generate_with_a_static_cache_under_torch_compile(make_model):
    model = make_model(local_attention_window=3, num_hidden_layers=2)
    ids, mask, _ = _left_padded_batch()
    kwargs = dict(
        attention_mask=mask, max_new_tokens=3, do_sample=False, pad_token_id=PAD, cache_implementation="static"
    )
    eager = model.generate(ids, **kwargs)
    model.forward = torch.compile(model.forward, backend="aot_eager")
    assert torch.equal(model.generate(ids, **kwargs), eager)
