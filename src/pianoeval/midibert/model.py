"""A MidiBERT-style Transformer encoder over MidiTok tokens and its masked-token heads (the
regression head for fine-tuning is ``midibert_head``).

Input ids are ``(B, L, F)``: F fields per token (CPWord: family, bar/position, pitch, velocity,
duration; REMI: F = 1). A token's embedding is the sum of its fields' embeddings, fed to a
pre-norm Transformer encoder; padding (``pad_id`` in field 0) is masked out of attention. Where
a token is in the sequence:

* ``position: learned`` (BERT): a learned embedding is added, e_t = sum_f E_f[x_tf] + P[t];
* ``position: alibi`` (Press et al. 2022, symmetric for an encoder): no position embedding;
  head h adds -m_h |i - j| to the attention score of query i on key j, with slopes
  m_h = 2^(-8 (h + 1) / H). Attending to one's neighbours is then the default rather than
  something the model must first learn from absolute positions, which is what kept the learned
  variant on the unigram plateau for ~65 M tokens (benchmarks/pretrain.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MidiBertConfig:
    """Architecture: pretrain_midi.model of params.yaml and the tokenizer's vocabulary, length
    and pad id (saved with every encoder and read back by fine-tuning); no defaults here."""
    vocab_sizes: list[int]
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int  # feed-forward width (4 x d_model, as in BERT)
    dropout: float
    max_len: int  # positions the encoder can take
    pad_id: int
    position: str  # "learned" (BERT) or "alibi" (distance bias in attention)


class Block(nn.Module):
    """One pre-norm encoder layer: x + Attn(LN(x)), then + FF(LN(x)), FF = W2 GELU(W1 x).
    Written out (not ``nn.TransformerEncoderLayer``) because its inference fast path returns NaN
    with a per-head float attention bias such as ALiBi's (torch 2.13); here training and
    inference take the same path."""

    def __init__(self, cfg: MidiBertConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout),
                                nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = (t.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)
                   for t in self.qkv(self.norm1(x)).split(D, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, L, D)))
        return x + self.drop(self.ff(self.norm2(x)))


class MidiBert(nn.Module):
    """Encoder: ids (B, L, F) -> hidden (B, L, d_model); ``mlm_logits`` adds one linear head
    per field (hidden -> that field's vocabulary)."""

    def __init__(self, cfg: MidiBertConfig):
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} must divide by n_heads {cfg.n_heads}")
        if cfg.position not in ("learned", "alibi"):
            raise ValueError(f"position must be 'learned' or 'alibi', not {cfg.position!r}")
        self.cfg = cfg
        self.embed = nn.ModuleList(nn.Embedding(v, cfg.d_model) for v in cfg.vocab_sizes)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.position == "learned" else None
        slopes = 2.0 ** (-8.0 * torch.arange(1, cfg.n_heads + 1) / cfg.n_heads)
        self.register_buffer("slopes", slopes if cfg.position == "alibi" else None, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.heads = nn.ModuleList(nn.Linear(cfg.d_model, v) for v in cfg.vocab_sizes)
        self.apply(_init)

    def forward(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, L, d_model); ``valid`` (B, L) is False at padding."""
        return self.layer_states(ids, valid)[-1]

    def layer_states(self, ids: torch.Tensor, valid: torch.Tensor) -> list[torch.Tensor]:
        """Every depth's states (B, L, d_model): the embeddings, each layer's residual stream,
        the last one through the final norm (= ``forward``); ``n_layers + 1`` tensors."""
        x = self._embed(ids)
        states, bias = [x], self._attention_bias(valid)
        for block in self.blocks:
            x = block(x, bias)
            states.append(x)
        states[-1] = self.norm(x)
        return states

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        B, L, F_ = ids.shape
        if F_ != len(self.embed):
            raise ValueError(f"ids have {F_} fields, the model {len(self.embed)}")
        if L > self.cfg.max_len:
            raise ValueError(f"sequence of {L} tokens > max_len {self.cfg.max_len}")
        x = sum(emb(ids[..., f]) for f, emb in enumerate(self.embed))
        if self.pos is not None:
            x = x + self.pos(torch.arange(L, device=ids.device))
        return self.drop(x)

    def _attention_bias(self, valid: torch.Tensor) -> torch.Tensor:
        """Additive attention bias: -inf at padding keys, (B, 1, 1, L); with ALiBi plus the
        distance term of each head, (B, H, L, L)."""
        bias = torch.zeros(valid.shape, dtype=torch.float32, device=valid.device)
        bias = bias.masked_fill(~valid, float("-inf"))[:, None, None, :]
        if self.slopes is None:
            return bias
        pos = torch.arange(valid.shape[1], device=valid.device)
        distance = (pos[None, :] - pos[:, None]).abs().to(self.slopes.dtype)
        return bias - self.slopes[:, None, None] * distance

    def mlm_logits(self, hidden: torch.Tensor) -> list[torch.Tensor]:
        """Per field (B, L, vocab_f)."""
        return [head(hidden) for head in self.heads]


def _init(module: nn.Module) -> None:
    # BERT's init: N(0, 0.02) weights, zero biases
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
