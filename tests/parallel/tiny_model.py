"""A small decoder with every architectural feature the strategies must handle: GQA, SwiGLU,
RMSNorm, per-head QK-norm, RoPE and tied embeddings, with the module names of
``ArgonneForCausalLM`` (``blocks[i].attn.{q,k,v,o}_proj``, ``attn.{q,k}_norm``,
``mlp.{gate,up,down}_proj``, ``embed_tokens``, ``norm``, ``lm_head``). Heads are viewed as
``view(B, T, -1, head_dim)`` so tensor-parallel ranks see their local heads."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.head_dim = d // heads
        self.q_proj = nn.Linear(d, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, d, bias=False)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        hd = self.head_dim
        q = self.q_norm(self.q_proj(x).view(B, T, -1, hd)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, -1, hd)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, -1, hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, d, width):
        super().__init__()
        self.gate_proj = nn.Linear(d, width, bias=False)
        self.up_proj = nn.Linear(d, width, bias=False)
        self.down_proj = nn.Linear(width, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, d, heads, kv_heads, width):
        super().__init__()
        self.input_norm = RMSNorm(d)
        self.attn = Attention(d, heads, kv_heads)
        self.post_norm = RMSNorm(d)
        self.mlp = MLP(d, width)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.input_norm(x), cos, sin)
        return x + self.mlp(self.post_norm(x))


class TinyCausalLM(nn.Module):
    def __init__(self, vocab=128, d=64, layers=2, heads=4, kv_heads=2, width=128):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab, hidden_size=d, num_attention_heads=heads,
                                      num_key_value_heads=kv_heads)
        self.embed_tokens = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads, kv_heads, width) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.embed_tokens.weight
        hd = d // heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        freqs = torch.outer(torch.arange(T, device=input_ids.device).float(), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_tokens(input_ids)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.lm_head(self.norm(x))
