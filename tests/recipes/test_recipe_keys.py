"""No accepted-but-ignored keys in the sections the release recipes set: every field of the model
sections, the clm objective, the schedules, ``[optim]`` and the FP8 keys of ``[train]`` changes
the built model, the loss, the LR curve or the optimizer — each shown here (or by the named test) —
and a key that would change nothing is refused. A field added to one of these classes without an
entry here fails the test."""

from __future__ import annotations

import attrs
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from argonne_kit.model import build_model
from argonne_kit.recipe.model_sections import Argonne1ModelConfig, Argonne2ModelConfig
from argonne_kit.recipe.sections import OptimConfig, TrainConfig
from argonne_kit.registry import get_registry
from argonne_kit.train.optimizer import build_optimizer

VOCAB = 112
IDS = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(0))


def _fields(cls) -> list[str]:
    return [f.name for f in attrs.fields(cls)]


# -- [model] -------------------------------------------------------------------------------------
BASE2 = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "max_position_embeddings": 32,
    "rope_theta": 1e4,
    "logit_softcap": 15.0,
}
#: field → a value that must change the model (its outputs, its parameters or its config)
CHANGE2 = {
    "vocab_size": 128,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "num_key_value_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "rms_norm_eps": 0.5,
    "rope_theta": 1e6,
    "qk_norm": False,
    "v_norm": False,
    "sandwich_norm": False,
    "interleaved_local_attention": True,
    "local_attention_window": 4,
    "logit_softcap": 2.0,
    "swiglu_clamp": 0.01,
    "tie_word_embeddings": False,
    "pad_vocab_to_multiple_of": 64,
}
#: fields that only act together with another one (value applied alongside)
WITH2 = {
    "local_attention_window": {"interleaved_local_attention": True},
    "interleaved_local_attention": {"local_attention_window": 4},
}
BASE1 = {"block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 32, "dropout": 0.1}
CHANGE1 = {"vocab_size": 128, "block_size": 48, "n_layer": 3, "n_head": 4, "n_embd": 48, "dropout": 0.5}


def _fingerprint(section_cls, fields: dict, train: bool = False):
    torch.manual_seed(0)
    model = build_model(section_cls(**fields), vocab_size=VOCAB)
    model.train(train)
    torch.manual_seed(1)
    with torch.no_grad():
        logits = model(input_ids=IDS).logits
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return logits, shapes, model.config.to_dict()


def _differs(a, b) -> bool:
    (la, sa, ca), (lb, sb, cb) = a, b
    return la.shape != lb.shape or not torch.allclose(la, lb) or sa != sb or ca != cb


def test_every_model_field_is_listed():
    assert set(_fields(Argonne2ModelConfig)) == set(CHANGE2)
    assert set(_fields(Argonne1ModelConfig)) == set(CHANGE1)


@pytest.mark.parametrize("field", sorted(CHANGE2))
def test_argonne2_model_field_changes_the_model(field):
    base = {**BASE2, **{k: v for k, v in WITH2.get(field, {}).items() if k != field}}
    if field == "interleaved_local_attention":
        base["interleaved_local_attention"] = False
    changed = {**base, field: CHANGE2[field]}
    assert _differs(_fingerprint(Argonne2ModelConfig, base), _fingerprint(Argonne2ModelConfig, changed))


def test_argonne2_logits_change_where_the_config_alone_could_hide_it():
    """Fields whose config entry changes anyway must also change the computation."""
    for field in ("rms_norm_eps", "rope_theta", "qk_norm", "v_norm", "sandwich_norm", "logit_softcap", "swiglu_clamp"):
        a = _fingerprint(Argonne2ModelConfig, BASE2)[0]
        b = _fingerprint(Argonne2ModelConfig, {**BASE2, field: CHANGE2[field]})[0]
        assert not torch.allclose(a, b), field
    windowed = {**BASE2, "interleaved_local_attention": True, "local_attention_window": 4}
    assert not torch.allclose(
        _fingerprint(Argonne2ModelConfig, BASE2)[0], _fingerprint(Argonne2ModelConfig, windowed)[0]
    )


@pytest.mark.parametrize("field", sorted(CHANGE1))
def test_argonne1_model_field_changes_the_model(field):
    train = field == "dropout"  # dropout acts in training mode
    a = _fingerprint(Argonne1ModelConfig, BASE1, train)
    b = _fingerprint(Argonne1ModelConfig, {**BASE1, field: CHANGE1[field]}, train)
    assert _differs(a, b)


# -- [objective] clm -----------------------------------------------------------------------------
def _clm(**cfg):
    component = get_registry().get("objective", "clm")
    return component.factory(component.config_cls(**cfg))


def test_every_clm_field_changes_the_loss_or_the_computation():
    component = get_registry().get("objective", "clm")
    assert set(_fields(component.config_cls)) == {"z_loss_weight", "loss_chunk_size", "mtp_horizon", "mtp_loss_weight"}
    torch.manual_seed(0)
    model = build_model(Argonne2ModelConfig(**BASE2), vocab_size=VOCAB)
    batch = {"input_ids": IDS}
    base = _clm()(model, batch).loss_sum
    assert not torch.allclose(_clm(z_loss_weight=0.1)(model, batch).loss_sum, base)
    mtp = _clm(mtp_horizon=3, mtp_loss_weight=0.5)(model, batch).loss_sum
    assert not torch.allclose(mtp, base)
    assert not torch.allclose(_clm(mtp_horizon=2, mtp_loss_weight=0.5)(model, batch).loss_sum, mtp)  # horizon
    # chunked CE: same loss, but no tensor ever holds more than a chunk of logit rows
    with _LogitRows() as rows:
        chunked = _clm(loss_chunk_size=10)(model, batch).loss_sum
    torch.testing.assert_close(chunked, base)
    assert max(rows.seen) == 10
    with _LogitRows() as rows:
        _clm()(model, batch)
    assert max(rows.seen) == IDS[:, 1:].numel()


class _LogitRows(TorchDispatchMode):
    """Rows of every contiguous ``[..., VOCAB]`` result computed inside the block (logits)."""

    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.dim() >= 2 and out.is_contiguous() and out.size(-1) == VOCAB:
            self.seen.append(out.numel() // VOCAB)
        return out


# -- [schedule] ----------------------------------------------------------------------------------
SCHEDULES = {
    "constant": {"warmup_steps": 5},
    "cosine": {"warmup_steps": 5, "min_lr_ratio": 0.3},
    "wsd": {
        "warmup_steps": 5,
        "cooldown_frac": 0.5,
        "cooldown_steps": 30,
        "decay_shape": "1-sqrt",
        "min_lr_ratio": 0.3,
        "allow_no_decay": True,
    },
}
SCHEDULE_BASE = {"wsd": {"cooldown_frac": 0.2}}


def _curve(kind: str, **cfg) -> list[float]:
    component = get_registry().get("schedule", kind)
    schedule = component.factory(component.config_cls(**cfg))
    return [schedule.factor(step, 100) for step in range(100)]


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_every_schedule_field_changes_the_lr_curve(kind):
    component = get_registry().get("schedule", kind)
    assert set(_fields(component.config_cls)) == set(SCHEDULES[kind])
    for field, value in SCHEDULES[kind].items():
        base = dict(SCHEDULE_BASE.get(kind, {}))
        if field == "cooldown_steps":
            base.pop("cooldown_frac")
        if field == "allow_no_decay":  # its effect: a flat WSD is accepted instead of refused
            config = component.config_cls(cooldown_steps=0, allow_no_decay=True)
            config.resolve(None)
            with pytest.raises(Exception, match="never decays"):
                component.config_cls(cooldown_steps=0).resolve(None)
            continue
        assert _curve(kind, **base) != _curve(kind, **{**base, field: value}), field


# -- [optim] and the FP8 keys of [train] ---------------------------------------------------------
OPTIM = {
    "lr": 1e-2,
    "betas": (0.8, 0.9),
    "eps": 1e-5,
    "weight_decay": 0.3,
    "no_decay_norms": True,
    "no_decay_embeddings": True,
    "fused": True,
}
#: fields shown by other tests: (test file, the test that shows it)
ELSEWHERE = {
    ("optim", "grad_clip"): ("tests/train/test_trainer_callbacks.py", "test_grad_clip_bounds_the_update"),
    ("train", "fp8"): ("tests/train/test_fp8.py", "test_block_linears_and_the_tied_head_are_converted_and_logged"),
    ("train", "fp8_lm_head"): ("tests/train/test_fp8.py", "test_fp8_lm_head_false_keeps_the_head"),
}


def _groups(**cfg):
    torch.manual_seed(0)
    model = build_model(Argonne2ModelConfig(**BASE2), vocab_size=VOCAB)
    optimizer = build_optimizer(model, OptimConfig(**cfg), torch.device("cpu"))
    return [({k: v for k, v in g.items() if k != "params"}, len(g["params"])) for g in optimizer.param_groups]


def test_every_optim_field_changes_the_optimizer():
    assert set(_fields(OptimConfig)) == set(OPTIM) | {k for s, k in ELSEWHERE if s == "optim"}
    base = _groups()
    for field, value in OPTIM.items():
        if field == "fused" and not torch.cuda.is_available():
            # CPU AdamW has a fused kernel too: the flag reaches the optimizer
            assert _groups(fused=True)[0][0]["fused"] is True and not base[0][0].get("fused")
            continue
        assert _groups(**{field: value}) != base, field


def test_the_fp8_keys_are_shown_elsewhere():
    names = {f.name for f in attrs.fields(TrainConfig) if f.name.startswith("fp8")}
    assert names == {k for s, k in ELSEWHERE if s == "train"}
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for (section, key), (path, test) in ELSEWHERE.items():
        assert f"def {test}(" in (root / path).read_text(), (section, key, path)
