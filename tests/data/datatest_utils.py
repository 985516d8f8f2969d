"""Helpers of the data tests (a unique module name: test folders have no __init__.py)."""

from __future__ import annotations

import copy
import io

import torch


def take(source, n):
    it = iter(source)
    return [next(it) for _ in range(n)]


def roundtrip(state):
    """A state through torch.save / torch.load(weights_only=True), as a checkpoint stores it."""
    buffer = io.BytesIO()
    torch.save(copy.deepcopy(state), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_same_batches(expected, got):
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def check_exact_resume(factory, before: int, after: int):
    """Batches after state_dict → new source → load_state_dict equal the uninterrupted ones."""
    reference = take(factory(), before + after)
    first = factory()
    it = iter(first)
    for _ in range(before):
        next(it)
    state = roundtrip(first.state_dict())
    resumed = factory()
    resumed.load_state_dict(state)
    assert_same_batches(reference[before:], take(resumed, after))
    return reference
