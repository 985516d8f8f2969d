"""``ArgonneForCausalLM``: the argonne2 family (2.0 → 4.0), Hugging Face-native.

One block (original.md §1.5), with the 3.0+ extras switched by the config:

    n = input_norm(x)
    q, k, v = n·Wqᵀ, n·Wkᵀ, n·Wvᵀ                      per-head views [B, H, T, hd]
    q, k = q_norm(q), k_norm(k)      (qk_norm)         RMSNorm over hd, weights shared by heads
    v = v_norm_layer(v)              (v_norm)
    q, k = RoPE(q), RoPE(k)                            after the norms
    a = Wo · attention(q, k, v)                        GQA, causal, per-layer window
    a = attn_out_norm(a)             (sandwich_norm)   before the residual add
    x = x + a
    n = post_norm(x)
    m = Wd·(silu(clamp(Wg·n)) ⊙ clamp(Wu·n))          gate/up clamped to ±65504 as in the original
                                                       (swiglu_clamp; 0 turns it off)
    m = mlp_out_norm(m)              (sandwich_norm)
    x = x + m
    logits = softcap·tanh(lm_head(norm(x))/softcap)    tied head; softcap 15 from 3.0 on

Layout as transformers models have it: the backbone :class:`ArgonneModel` (``embed_tokens``,
``layers.{i}``, ``norm``) sits under ``model.`` in :class:`ArgonneForCausalLM` (plus the tied
``lm_head``) and :class:`ArgonneForSequenceClassification` (plus ``score``). Checkpoints with
the released key names (``embed_tokens``, ``blocks.{i}``, ``norm``) load through
``legacy_key_mapping``. Attention goes through the attention contract
(see :mod:`argonne_kit.model.attend`); ``attention_mask`` (padding) and ``position_ids`` are
honoured, and ``segment_ids`` masks attention across packed documents. Labels follow the Hugging
Face convention and are shifted inside (see :mod:`argonne_kit.loss`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from argonne_kit.loss import causal_lm_loss
from argonne_kit.model.attend import AttentionContext, AttentionPlan, attend, build_context
from argonne_kit.model.config import ArgonneConfig
from argonne_kit.model.hf import ArgonneHFMixin, CausalLMLossMixin, finish_output, past_length, score_last_token
from argonne_kit.model.linear import Linear
from argonne_kit.model.rope import RotaryEmbedding, apply_rotary
from argonne_kit.model.swiglu import swiglu


class RMSNorm(nn.Module):
    """RMSNorm, normalised in fp32 and returned as ``weight · x̂`` (so fp32 weights promote a
    bf16 input to fp32, as the original's norms did)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # torch's fused kernel; in fp32 it is bitwise the formula below
            return nn.functional.rms_norm(x, self.weight.shape, self.weight, self.eps)
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class ArgonneAttention(nn.Module):
    """GQA self-attention with optional QK-norm and V-norm (weights of size head_dim)."""

    def __init__(self, config: ArgonneConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        d, heads, kv_heads = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        assert d is not None and heads is not None and kv_heads is not None  # filled by the config's __post_init__
        self.head_dim = config.head_dim
        self.num_heads = heads
        self.num_kv_heads = kv_heads
        bias = config.attention_bias
        self.q_proj = Linear(d, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = Linear(d, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = Linear(d, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = Linear(self.num_heads * self.head_dim, d, bias=bias)
        self.o_proj.residual_projection = True
        if config.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        if config.v_norm:
            self.v_norm_layer = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.qk_norm, self.v_norm = config.qk_norm, config.v_norm

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, ctx: AttentionContext, cache=None
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.num_heads, self.head_dim)
        k = self.k_proj(x).view(batch, length, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).view(batch, length, self.num_kv_heads, self.head_dim)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.v_norm:
            v = self.v_norm_layer(v)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = attend(ctx, self.layer_idx, q, k, v, cache)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))


class ArgonneMLP(nn.Module):
    """SwiGLU MLP."""

    def __init__(self, config: ArgonneConfig):
        super().__init__()
        d, width, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        assert d is not None and width is not None  # filled by the config's __post_init__
        self.gate_proj = Linear(d, width, bias=bias)
        self.up_proj = Linear(d, width, bias=bias)
        self.down_proj = Linear(width, d, bias=bias)
        self.down_proj.residual_projection = True
        self.clamp = config.swiglu_clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x), self.clamp))


class ArgonneBlock(GradientCheckpointingLayer):
    """One pre-norm transformer block, with optional sandwich norms."""

    def __init__(self, config: ArgonneConfig, layer_idx: int):
        super().__init__()
        d, eps = config.hidden_size, config.rms_norm_eps
        assert d is not None  # filled by the config's __post_init__
        self.input_norm = RMSNorm(d, eps)
        self.attn = ArgonneAttention(config, layer_idx)
        self.post_norm = RMSNorm(d, eps)
        self.mlp = ArgonneMLP(config)
        self.sandwich = config.sandwich_norm
        if self.sandwich:
            self.attn_out_norm = RMSNorm(d, eps)
            self.mlp_out_norm = RMSNorm(d, eps)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, ctx: AttentionContext, cache=None
    ) -> torch.Tensor:
        a = self.attn(self.input_norm(x), cos, sin, ctx, cache)
        if self.sandwich:
            a = self.attn_out_norm(a)
        x = x + a
        m = self.mlp(self.post_norm(x))
        if self.sandwich:
            m = self.mlp_out_norm(m)
        return x + m


class ArgonnePreTrainedModel(ArgonneHFMixin, PreTrainedModel):
    """Weight init and Hugging Face plumbing shared by the argonne2 backbone and heads."""

    config_class = ArgonneConfig
    config: ArgonneConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ArgonneBlock"]
    legacy_key_mapping = {
        r"^embed_tokens\.": "model.embed_tokens.",
        r"^blocks\.": "model.layers.",
        r"^norm\.": "model.norm.",
    }

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Every Linear N(0, d^-0.5), residual projections (o_proj, down_proj) N(0, (2L)^-0.5),
        embedding N(0, d^-0.5), norms ones, biases zero; RoPE frequencies recomputed (they are
        not in checkpoints — D-11)."""
        layers, d = self.config.num_hidden_layers, self.config.hidden_size
        assert layers is not None and d is not None  # filled by the config's __post_init__
        if isinstance(module, nn.Linear):
            residual = getattr(module, "residual_projection", False)
            std = (2 * layers) ** -0.5 if residual else d**-0.5
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=d**-0.5)
        elif isinstance(module, RMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, RotaryEmbedding):
            module.reset_inv_freq()


class ArgonneModel(ArgonnePreTrainedModel):
    """The argonne2 backbone: embeddings, blocks and the final norm. Returns
    ``last_hidden_state`` (after the final norm), the cache, and on request every layer's hidden
    states and attention weights."""

    legacy_key_mapping = {r"^blocks\.": "layers."}

    def __init__(self, config: ArgonneConfig, initialize: bool = True):
        super().__init__(config)
        d, layers = config.hidden_size, config.num_hidden_layers
        heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
        assert d is not None and layers is not None and heads is not None and kv_heads is not None  # __post_init__
        self.embed_tokens: nn.Module = nn.Embedding(config.vocab_size, d)  # transformers may swap in any module
        self.layers = nn.ModuleList(ArgonneBlock(config, i) for i in range(layers))
        self.norm = RMSNorm(d, config.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(config.head_dim, config.rope_theta)
        self._attention = AttentionPlan(config.attn_backend, config.layer_windows(), config.head_dim, heads, kv_heads)
        if initialize:  # a head initialises its backbone with itself, in one pass (same seed, same weights)
            self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        past_key_values=None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ):
        """``attention_mask [B, past+T]`` marks real tokens (1) and padding (0); ``position_ids``
        default to ``past .. past+T-1``; ``segment_ids [B, T]`` hides keys of other packed
        documents; ``cache``/``past_key_values`` is a transformers ``Cache`` (``use_cache``
        creates a ``DynamicCache``). ``hidden_states[-1]`` is the final-norm output."""
        cache = cache if cache is not None else past_key_values
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        hidden = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if use_cache and cache is None:
            cache = DynamicCache()
        length = hidden.size(1)
        past = past_length(cache, attention_mask, length)
        positions = (
            torch.arange(past, past + length, device=hidden.device).unsqueeze(0)
            if position_ids is None
            else position_ids
        )
        ctx = build_context(
            self._attention, hidden, attention_mask, segment_ids, past, output_attentions=bool(output_attentions)
        )
        cos, sin = self.rotary_emb(positions, hidden.dtype)

        all_hidden = [hidden] if output_hidden_states else None
        for block in self.layers:
            hidden = block(hidden, cos, sin, ctx, cache=cache)
            if all_hidden is not None:
                all_hidden.append(hidden)
        hidden = self.norm(hidden)
        if all_hidden is not None:
            all_hidden[-1] = hidden  # hidden_states[-1] is the final-norm output (what the head reads)
        out = BaseModelOutputWithPast(
            last_hidden_state=hidden,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            attentions=tuple(ctx.weights) if ctx.weights is not None else None,
        )
        return finish_output(out, return_dict, self.config)


class ArgonneForCausalLM(CausalLMLossMixin, ArgonnePreTrainedModel, GenerationMixin):
    """The argonne2 language model: :class:`ArgonneModel` under ``model.`` and the tied
    ``lm_head``, with the final-logit softcap (chunked CE: :class:`CausalLMLossMixin`)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    #: (input, output) embedding keys, for checkpoint loading and vocabulary padding
    embedding_keys = ("model.embed_tokens.weight", "lm_head.weight")

    def __init__(self, config: ArgonneConfig):
        super().__init__(config)
        assert config.hidden_size is not None  # filled by the config's __post_init__
        self.model = ArgonneModel(config, initialize=False)
        self.lm_head: nn.Linear = Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()
        if config.use_gradient_checkpointing:
            self.gradient_checkpointing_enable()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def logit_softcap(self) -> float:
        """``config.softcap`` (0 = none)."""
        return self.config.softcap or 0.0

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM head then the final-logit softcap (if configured) on final hidden states."""
        logits = self.lm_head(hidden)
        cap = self.logit_softcap()
        if cap:
            logits = cap * torch.tanh(logits / cap)
        return logits

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        cache=None,
        past_key_values=None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        return_logits: bool = True,
    ):
        """Logits (and loss when ``labels`` are given; labels are shifted inside, HF convention).

        Inputs as :meth:`ArgonneModel.forward`. ``logits_to_keep=k`` computes logits for the
        last k positions only; ``return_logits=False`` skips the head (use
        ``output_hidden_states``). With ``labels`` in training and ``config.loss_chunk_size > 0``
        (MTP off) the loss is chunked and ``logits`` is None. ``return_dict=False`` returns the
        output as a tuple.
        """
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            past_key_values=past_key_values,
            use_cache=use_cache,
            inputs_embeds=inputs_embeds,
            segment_ids=segment_ids,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        hidden = outputs.last_hidden_state
        cfg = self.config
        loss = logits = None
        chunked = (
            labels is not None
            and self.training
            and cfg.loss_chunk_size > 0
            and not (cfg.mtp_loss_weight and cfg.mtp_horizon > 1)
        )
        if chunked and labels is not None:
            loss_sum, _, _, count = self.chunked_loss_sums(
                hidden[:, :-1], labels[:, 1:], cfg.loss_chunk_size, cfg.z_loss_weight
            )
            loss = loss_sum / count.clamp(min=1)
        elif return_logits or labels is not None:
            kept = hidden[:, -logits_to_keep:] if logits_to_keep and labels is None else hidden
            logits = self.logits_from_hidden(kept)
            if labels is not None:
                loss = causal_lm_loss(
                    logits,
                    labels,
                    z_loss_weight=cfg.z_loss_weight,
                    mtp_horizon=cfg.mtp_horizon,
                    mtp_loss_weight=cfg.mtp_loss_weight,
                )
        out = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return finish_output(out, return_dict, cfg)


class ArgonneForSequenceClassification(ArgonnePreTrainedModel):
    """:class:`ArgonneModel` with a linear ``score`` head read at each sequence's last real
    token (the rightmost token that is not ``pad_token_id``): reward models, classifiers."""

    def __init__(self, config: ArgonneConfig):
        super().__init__(config)
        num_labels = config.num_labels
        assert num_labels is not None  # the config's __post_init__ sets id2label (2 labels by default)
        self.num_labels = num_labels
        assert config.hidden_size is not None  # filled by the config's __post_init__
        self.model = ArgonneModel(config, initialize=False)
        self.score = nn.Linear(config.hidden_size, num_labels, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        cache=None,
        past_key_values=None,
        use_cache: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ):
        """Scores ``[B, num_labels]`` (and the loss transformers picks from ``problem_type``)."""
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            past_key_values=past_key_values,
            use_cache=use_cache,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        return finish_output(score_last_token(self, self.score, outputs, input_ids, labels), return_dict, self.config)
