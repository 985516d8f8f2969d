"""Parity with transformers' reference models, weights mapped by name.

- an argonne2 config shaped like Qwen3 (QK-norm only, no V-norm, no sandwich, no softcap, no
  window) equals ``Qwen3ForCausalLM``;
- an Argonne 1.x config equals ``GPT2LMHeadModel`` with exact GELU (GPT-2's fused ``c_attn``
  Conv1D is the transposed concatenation of our query/key/value).
"""

from __future__ import annotations

import pytest
import torch
from model_fixtures import VOCAB, randomize_norms, released_state, tiny_config
from transformers import GPT2Config, GPT2LMHeadModel, Qwen3Config, Qwen3ForCausalLM

from argonne_kit.model import ArgonneForCausalLM

QWEN_LIKE = dict(
    qk_norm=True,
    v_norm=False,
    sandwich_norm=False,
    logit_softcap=0.0,
    interleaved_local_attention=False,
    rope_theta=5e4,
)


def qwen3_from(model: ArgonneForCausalLM) -> Qwen3ForCausalLM:
    cfg = model.config
    qwen = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads,
            num_key_value_heads=cfg.num_key_value_heads,
            head_dim=cfg.head_dim,
            rms_norm_eps=cfg.rms_norm_eps,
            max_position_embeddings=cfg.max_position_embeddings,
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
            attn_implementation="eager",
        )
    )
    names = {"input_norm": "input_layernorm", "post_norm": "post_attention_layernorm", "attn.": "self_attn."}
    mapped = {}
    for key, value in released_state(model).items():
        if key.startswith("blocks."):
            key = "model.layers." + key[len("blocks.") :]
            for ours, theirs in names.items():
                key = key.replace(ours, theirs)
        elif key != "lm_head.weight":
            key = "model." + key
        mapped[key] = value
    qwen.load_state_dict(mapped, strict=True)
    return qwen.eval()


@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_qwen3_shaped_argonne2_equals_qwen3(make_model, backend):
    model = make_model(**QWEN_LIKE, attn_backend=backend)
    qwen = qwen3_from(model)
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(ids).logits, qwen(ids).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)

    # left padding + attention mask: the same logits on the real tokens
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ours = model(ids, attention_mask=mask, position_ids=position_ids).logits
        theirs = qwen(ids, attention_mask=mask, position_ids=position_ids).logits
    torch.testing.assert_close(ours[mask.bool()], theirs[mask.bool()], rtol=1e-5, atol=1e-5)


def test_qwen3_shaped_greedy_generation_matches(make_model):
    model = make_model(**QWEN_LIKE)
    qwen = qwen3_from(model)
    prompt = torch.randint(0, VOCAB, (1, 7), generator=torch.Generator().manual_seed(2))
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(prompt, **kwargs), qwen.generate(prompt, **kwargs))


def gpt2_from(model) -> GPT2LMHeadModel:
    cfg = model.config
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=cfg.vocab_size,
            n_positions=cfg.block_size,
            n_embd=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            activation_function="gelu",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            layer_norm_epsilon=1e-5,
            tie_word_embeddings=False,
            attn_implementation="eager",
        )
    )
    state = released_state(model)
    mapped = {
        "transformer.wte.weight": state["token_embedding.weight"],
        "transformer.wpe.weight": state["position_embedding"][0],
        "transformer.ln_f.weight": state["ln_f.weight"],
        "transformer.ln_f.bias": state["ln_f.bias"],
        "lm_head.weight": state["head.weight"],
    }
    for i in range(cfg.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b in (("ln1", "ln_1"), ("ln2", "ln_2")):
            for p in ("weight", "bias"):
                mapped[f"{theirs}{b}.{p}"] = state[f"{ours}{a}.{p}"]
        # Conv1D stores [in, out]: transpose, and concatenate q|k|v along the output dim
        mapped[f"{theirs}attn.c_attn.weight"] = torch.cat(
            [state[f"{ours}attn.{n}.weight"].t() for n in ("query", "key", "value")], dim=1
        )
        mapped[f"{theirs}attn.c_attn.bias"] = torch.cat(
            [state[f"{ours}attn.{n}.bias"] for n in ("query", "key", "value")]
        )
        for a, b in (("attn.proj", "attn.c_proj"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
            mapped[f"{theirs}{b}.weight"] = state[f"{ours}{a}.weight"].t()
            mapped[f"{theirs}{b}.bias"] = state[f"{ours}{a}.bias"]
    missing, unexpected = gpt2.load_state_dict(mapped, strict=False)
    assert not unexpected and all(k.endswith("attn.bias") or k.endswith("masked_bias") for k in missing)
    return gpt2.eval()


def test_argonne1_equals_gpt2(make_v1_model):
    model = make_v1_model()
    gpt2 = gpt2_from(model)
    ids = torch.randint(0, VOCAB, (2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, gpt2(ids).logits, rtol=1e-5, atol=1e-5)
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(ids[:1, :5], **kwargs), gpt2.generate(ids[:1, :5], **kwargs))


def test_randomized_norms_really_differ(make_model):
    # guards the parity tests above against trivially-equal (all-ones) norm weights
    model = make_model(**QWEN_LIKE)
    assert not torch.equal(model.model.layers[0].attn.q_norm.weight, torch.ones(16))
    assert randomize_norms is not None and tiny_config(**QWEN_LIKE).v_norm is False
