"""``ArgonneV1ForCausalLM``: the GPT-2-style Argonne 1.0 / 1.5 (original.md §1.1–1.2).

Learned absolute positions (a ``[1, block_size, d]`` parameter), pre-LN LayerNorm blocks with
separate ``query``/``key``/``value``/``proj`` Linear layers (with biases), an exact-GELU MLP
(``fc1``/``fc2`` with biases), dropout 0.1 in training (embeddings, residuals, MLP and — through
``AttentionSpec.dropout`` — the attention probabilities) and an untied head.

Layout as transformers models have it: the backbone :class:`ArgonneV1Model`
(``token_embedding``, ``position_embedding``, ``layers.{i}``, ``ln_f``) under ``model.`` in
:class:`ArgonneV1ForCausalLM` (plus ``lm_head``) and :class:`ArgonneV1ForSequenceClassification`
(plus ``score``). Released checkpoints (``token_embedding``, ``blocks.{i}``, ``ln_f``, ``head``)
load through ``legacy_key_mapping``. The persistent ``attn.mask`` buffer of every block is kept
only so released state dicts load key-for-key — masking is done by the attention backend, which
also honours ``attention_mask`` and ``position_ids``.
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
from argonne_kit.model.config import ArgonneV1Config
from argonne_kit.model.hf import ArgonneHFMixin, CausalLMLossMixin, finish_output, past_length, score_last_token
from argonne_kit.model.linear import Linear

INIT_STD = 0.02


class ArgonneV1Attention(nn.Module):
    """Multi-head causal self-attention with separate q/k/v/proj projections."""

    mask: torch.Tensor  # a registered buffer

    def __init__(self, config: ArgonneV1Config, layer_idx: int):
        super().__init__()
        d = config.n_embd
        self.layer_idx = layer_idx
        self.num_heads = config.n_head
        self.head_dim = config.head_dim
        self.query = Linear(d, d)
        self.key = Linear(d, d)
        self.value = Linear(d, d)
        self.proj = Linear(d, d)
        self.register_buffer("mask", causal_mask_buffer(config.block_size))

    def forward(self, x: torch.Tensor, ctx: AttentionContext, cache=None) -> torch.Tensor:
        batch, length, _ = x.shape

        def heads(t):
            return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        out = attend(ctx, self.layer_idx, heads(self.query(x)), heads(self.key(x)), heads(self.value(x)), cache)
        return self.proj(out.transpose(1, 2).reshape(batch, length, -1))


def causal_mask_buffer(block_size: int) -> torch.Tensor:
    """The original's ``[1, 1, T, T]`` lower-triangular ones."""
    return torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size)


class ArgonneV1MLP(nn.Module):
    """fc1 (d→4d) → exact GELU → dropout → fc2 (4d→d) → dropout."""

    def __init__(self, config: ArgonneV1Config):
        super().__init__()
        self.fc1 = Linear(config.n_embd, 4 * config.n_embd)
        self.fc2 = Linear(4 * config.n_embd, config.n_embd)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(nn.functional.gelu(self.fc1(x)))))


class ArgonneV1Block(GradientCheckpointingLayer):
    """x += Drop(Proj(Attn(LN1(x)))); x += MLP(LN2(x))."""

    def __init__(self, config: ArgonneV1Config, layer_idx: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = ArgonneV1Attention(config, layer_idx)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = ArgonneV1MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, ctx: AttentionContext, cache=None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), ctx, cache))
        return x + self.mlp(self.ln2(x))


class ArgonneV1PreTrainedModel(ArgonneHFMixin, PreTrainedModel):
    """Weight init and Hugging Face plumbing shared by the 1.x backbone and heads."""

    config_class = ArgonneV1Config
    config: ArgonneV1Config
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ArgonneV1Block"]
    legacy_key_mapping = {
        r"^token_embedding\.": "model.token_embedding.",
        r"^position_embedding$": "model.position_embedding",
        r"^blocks\.": "model.layers.",
        r"^ln_f\.": "model.ln_f.",
        r"^head\.": "lm_head.",
    }

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Linear/Embedding/position N(0, 0.02), biases 0, LayerNorm (1, 0); the causal buffer."""
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=INIT_STD)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, ArgonneV1Attention):
            init.copy_(module.mask, causal_mask_buffer(module.mask.size(-1)))
        elif isinstance(module, ArgonneV1Model):
            init.normal_(module.position_embedding, mean=0.0, std=INIT_STD)


class ArgonneV1Model(ArgonneV1PreTrainedModel):
    """The 1.x backbone: token and learned position embeddings, blocks, final LayerNorm."""

    legacy_key_mapping = {r"^blocks\.": "layers."}

    def __init__(self, config: ArgonneV1Config, initialize: bool = True):
        super().__init__(config)
        d = config.n_embd
        self.token_embedding: nn.Module = nn.Embedding(config.vocab_size, d)  # transformers may swap in any module
        self.position_embedding = nn.Parameter(torch.zeros(1, config.block_size, d))
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(ArgonneV1Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self._attention = AttentionPlan(
            config.attn_backend,
            [None] * config.n_layer,
            config.head_dim,
            config.n_head,
            config.n_head,
            dropout=config.dropout,
        )
        if initialize:  # a head initialises its backbone with itself, in one pass (same seed, same weights)
            self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.token_embedding = value

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
        """Same contract as ``ArgonneModel.forward``; positions must stay below ``block_size``."""
        cache = cache if cache is not None else past_key_values
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        tokens = self.token_embedding(input_ids) if inputs_embeds is None else inputs_embeds
        if use_cache and cache is None:
            cache = DynamicCache()
        length = tokens.size(1)
        past = past_length(cache, attention_mask, length)
        positions = (
            torch.arange(past, past + length, device=tokens.device).unsqueeze(0)
            if position_ids is None
            else position_ids
        )
        if not torch.compiler.is_compiling() and int(positions.max()) >= self.config.block_size:
            raise ValueError(
                f"position {int(positions.max())} is beyond block_size {self.config.block_size} "
                "(Argonne 1.x has learned positions)"
            )
        hidden = self.drop(tokens + self.position_embedding[0, positions])
        ctx = build_context(
            self._attention,
            hidden,
            attention_mask,
            segment_ids,
            past,
            training=self.training,
            output_attentions=bool(output_attentions),
        )

        all_hidden = [hidden] if output_hidden_states else None
        for block in self.layers:
            hidden = block(hidden, ctx, cache=cache)
            if all_hidden is not None:
                all_hidden.append(hidden)
        hidden = self.ln_f(hidden)
        if all_hidden is not None:
            all_hidden[-1] = hidden
        out = BaseModelOutputWithPast(
            last_hidden_state=hidden,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            attentions=tuple(ctx.weights) if ctx.weights is not None else None,
        )
        return finish_output(out, return_dict, self.config)


class ArgonneV1ForCausalLM(CausalLMLossMixin, ArgonneV1PreTrainedModel, GenerationMixin):
    """The 1.x language model: :class:`ArgonneV1Model` under ``model.`` and the untied ``lm_head``
    (chunked CE: :class:`CausalLMLossMixin`)."""

    #: (input, output) embedding keys, for checkpoint loading
    embedding_keys = ("model.token_embedding.weight", "lm_head.weight")

    def __init__(self, config: ArgonneV1Config):
        super().__init__(config)
        self.model = ArgonneV1Model(config, initialize=False)
        self.lm_head: nn.Linear = Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.token_embedding = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The untied head on final (``ln_f``) hidden states."""
        return self.lm_head(hidden)

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
        """Same contract as ``ArgonneForCausalLM.forward`` (labels shifted inside)."""
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
        loss = logits = None
        if return_logits or labels is not None:
            kept = hidden[:, -logits_to_keep:] if logits_to_keep and labels is None else hidden
            logits = self.logits_from_hidden(kept)
            if labels is not None:
                loss = causal_lm_loss(logits, labels)
        out = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return finish_output(out, return_dict, self.config)


class ArgonneV1ForSequenceClassification(ArgonneV1PreTrainedModel):
    """:class:`ArgonneV1Model` with a linear ``score`` head read at each sequence's last real token."""

    def __init__(self, config: ArgonneV1Config):
        super().__init__(config)
        num_labels = config.num_labels
        assert num_labels is not None  # the config's __post_init__ sets id2label (2 labels by default)
        self.num_labels = num_labels
        self.model = ArgonneV1Model(config, initialize=False)
        self.score = nn.Linear(config.n_embd, num_labels, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.token_embedding = value

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
