"""generate() through GenerationMixin with a KV cache: padding, caching, eos (D-10)."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import VOCAB
from transformers import DynamicCache

PROMPTS = [torch.randint(1, VOCAB, (n,), generator=torch.Generator().manual_seed(n)) for n in (9, 4, 6)]
PAD = 0


def _left_padded(prompts):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = p
        mask[row, width - len(p) :] = 1
    return ids, mask


@pytest.mark.parametrize("window", [None, 3])
def test_left_padded_batch_equals_one_by_one(make_model, window):
    model = make_model(local_attention_window=window, interleaved_local_attention=window is not None)
    ids, mask = _left_padded(PROMPTS)
    kwargs = dict(max_new_tokens=7, do_sample=False, pad_token_id=PAD)
    batch = model.generate(ids, attention_mask=mask, **kwargs)
    for row, prompt in enumerate(PROMPTS):
        alone = model.generate(prompt[None], **kwargs)
        assert torch.equal(batch[row, ids.size(1) :], alone[0, len(prompt) :])


@pytest.mark.parametrize("window", [None, 3])
def test_cached_decode_equals_recomputation(make_model, window):
    model = make_model(local_attention_window=window, interleaved_local_attention=window is not None)
    ids = torch.randint(0, VOCAB, (2, 14), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        full = model(ids).logits
        cache = DynamicCache()
        prefill = model(ids[:, :6], cache=cache, use_cache=True)
        steps = [prefill.logits]
        for t in range(6, ids.size(1)):
            steps.append(model(ids[:, t : t + 1], past_key_values=cache, use_cache=True).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=PAD)
    assert torch.equal(
        model.generate(ids[:, :5], use_cache=True, **kwargs), model.generate(ids[:, :5], use_cache=False, **kwargs)
    )


def test_generation_stops_at_eos(make_model):
    model = make_model()
    prompt = PROMPTS[0][None]
    free = model.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=PAD)
    new = free[0, prompt.size(1) :]
    eos = int(new[3])
    first = int((new == eos).nonzero()[0])
    stopped = model.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=PAD, eos_token_id=eos)
    assert stopped.size(1) == prompt.size(1) + first + 1
    assert int(stopped[0, -1]) == eos
    # the config's eos is the default (D-10)
    model.config.eos_token_id = eos
    model.generation_config.eos_token_id = eos
    assert torch.equal(model.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=PAD), stopped)


def test_sampling_is_seeded_and_respects_top_k(make_model):
    model = make_model()
    prompt = PROMPTS[1][None]
    kwargs = dict(max_new_tokens=5, do_sample=True, top_k=3, temperature=0.8, pad_token_id=PAD)
    torch.manual_seed(11)
    a = model.generate(prompt, **kwargs)
    torch.manual_seed(11)
    b = model.generate(prompt, **kwargs)
    assert torch.equal(a, b)
    with torch.no_grad():
        top3 = model(prompt).logits[0, -1].topk(3).indices
    assert int(a[0, prompt.size(1)]) in top3.tolist()
