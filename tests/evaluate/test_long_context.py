"""Long-context NLL curves from two tiny models (slow: trains both, ~20 s on one core).

Documents repeat a random 24-token phrase, so from position 24 on the next token can be copied
from 24 tokens back. A model trained on 128-token windows learns to copy: its NLL falls with
position. One trained on 16-token windows never saw a repetition: past its window its NLL stays
at the no-context level (it does not fall). At this size and budget the short model does not
*rise* past its window either; the bucketing itself is tested exactly elsewhere.
"""

from __future__ import annotations

import pytest
import torch

from argonne_kit.evaluate.position import PositionBuckets
from argonne_kit.evaluate.score import token_nll
from argonne_kit.model import build_model
from argonne_kit.recipe.model_sections import Argonne2ModelConfig

VOCAB, PERIOD = 64, 24


def _documents(rows: int, length: int, generator: torch.Generator) -> torch.Tensor:
    phrases = torch.randint(0, VOCAB, (rows, PERIOD), generator=generator)
    return phrases.repeat(1, length // PERIOD + 1)[:, :length]


def _train(seq_len: int, steps: int = 100, tokens_per_step: int = 1024) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = Argonne2ModelConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=seq_len,
        rope_theta=10000.0,
    )
    model = build_model(cfg)
    model.set_attention_backend("sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ids = _documents(tokens_per_step // seq_len, seq_len + 1, generator)
        logits = model(input_ids=ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.slow
def test_long_context_model_falls_short_one_does_not():
    held_out = _documents(16, 129, torch.Generator().manual_seed(99))
    curves = {}
    for name, seq_len in (("short", 16), ("long", 128)):
        buckets = PositionBuckets([0, 16, 32, 64, 128])
        buckets.add(token_nll(_train(seq_len), held_out))
        curves[name] = [row["nll"] for row in buckets.rows()]
    long_curve, short_curve = curves["long"], curves["short"]
    assert long_curve[-1] < long_curve[0] - 2.0  # copies from context it was trained to use
    assert all(abs(value - short_curve[0]) < 0.1 for value in short_curve[1:])  # past 16 tokens: no gain
