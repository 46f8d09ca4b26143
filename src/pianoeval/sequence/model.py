"""A note-sequence model with hierarchical attention: notes -> beats -> bars -> segment -> 19 ratings.

A cut-down version of PercePiano's hierarchical attention network (VirtuosoNet's encoder), sized
for ~1,000 training segments on a CPU:

1. ``in_proj``: per-note feature vector (already standardised, NaN -> 0) -> ``d_model``.
2. ``encoder``: a bidirectional LSTM over the notes in performance order (PercePiano's choice),
   rather than a small Transformer: the segments are short (51..413 notes) and local order
   matters more than long-range content, it needs no position encoding (notes are not evenly
   spaced in time, so an index encoding would mean little), and on one CPU core it is 4-6x
   faster per training step than a Transformer layer of the same width (measured: 12 vs 54 ms
   forward + backward for 16 x 130 notes at d=32; the CPU attention kernel dominates).
3. Pooling from the score's structure: attention-weighted means of the notes of each beat, then
   of the beats of each bar, then of the bars of the segment (``hierarchical=True``); or one
   attention-weighted mean over all notes (``hierarchical=False``, the ablation). Each pooling
   is HAN-style multi-head context attention: score_h(x) = c_h . tanh(W x), softmax over the
   members of a group, per head over its slice of the embedding.
4. ``head``: LayerNorm, dropout, a linear layer to 19 outputs. Linear, not sigmoid: the model is
   trained on per-dimension standardised targets (so MSE is the mean of 1 - R^2 over dimensions)
   and predictions are mapped back to the 0..1 scale and clipped to the training range by the
   training code. A sigmoid would squash the tails of the label range, which are what R^2 rewards.

Groups are given per note: ``beat`` (B, L) and ``bar`` (B, L) hold, for every note, the index of
its beat and bar group counted from 0 within its segment (``beat`` must be unique across bars:
the data code numbers (bar, beat) pairs). Padding notes have ``mask`` False and are ignored
everywhere; a segment's output does not depend on what else is in its batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from pianoeval.data.dimensions import N_DIMS

NEG = -1e9  # logit of a non-member: exp() underflows to exactly 0 in float32


@dataclass
class HierConfig:
    """Architecture: train_sequence.model of params.yaml, the ablation's pooling and its input
    width; only the output width (the 19 dimensions) has a default."""
    n_features: int  # per-note input features
    d_model: int  # note embedding width (Bi-LSTM: d_model // 2 per direction)
    n_layers: int  # Bi-LSTM layers
    n_heads: int  # attention heads of every pooling
    dropout: float
    hierarchical: bool  # False: flat attention pooling over all notes (ablation)
    n_outputs: int = N_DIMS


@dataclass
class Batch:
    x: torch.Tensor      # (B, L, F) float, standardised features, 0 at padding
    mask: torch.Tensor   # (B, L) bool, True for real notes
    beat: torch.Tensor   # (B, L) long, beat group of each note (0..n_beats-1), 0 at padding
    bar: torch.Tensor    # (B, L) long, bar group of each note (0..n_bars-1), 0 at padding


class AttentionPool(nn.Module):
    """Multi-head context attention pooling of members into groups.

    ``forward(h, member)`` with h (B, N, D) and member (B, G, N) bool returns (B, G, D): for
    group g, head k, ``sum_n softmax_n(score_k(h_n) | n in g) * h_n[slice k]``. An empty group
    gives zeros.
    """

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        assert d % n_heads == 0, f"d_model {d} not divisible by n_heads {n_heads}"
        self.n_heads = n_heads
        self.proj = nn.Linear(d, d)
        self.context = nn.Linear(d, n_heads, bias=False)  # one context vector per head

    def weights(self, h: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """(B, G, heads, N) attention weights, rows summing to 1 over members (0 if empty)."""
        scores = self.context(torch.tanh(self.proj(h)))            # (B, N, H)
        logits = scores.transpose(1, 2).unsqueeze(1)                # (B, 1, H, N)
        m = member.unsqueeze(2)                                      # (B, G, 1, N)
        w = torch.softmax(logits.masked_fill(~m, NEG), dim=-1)
        return w * m                                                 # empty group -> all 0

    def forward(self, h: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        B, N, D = h.shape
        w = self.weights(h, member)                                  # (B, G, H, N)
        hh = h.view(B, N, self.n_heads, D // self.n_heads)
        return torch.einsum("bghn,bnhd->bghd", w, hh).reshape(B, -1, D)


def membership(ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, G, N) bool: member[b, g, n] = valid[b, n] and ids[b, n] == g; G = max id + 1."""
    n_groups = int(ids[valid].max()) + 1 if valid.any() else 1
    groups = torch.arange(n_groups, device=ids.device)
    return (ids.unsqueeze(1) == groups[None, :, None]) & valid.unsqueeze(1)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` steps of every row of x (B, L, ...); padding stays put."""
    t = torch.arange(x.shape[1], device=x.device)[None]
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, idx.view(*idx.shape, *[1] * (x.dim() - 2)).expand_as(x))


class BiLSTM(nn.Module):
    """Bidirectional LSTM for right-padded batches, exact under padding.

    A packed sequence would do this too, but on CPU PyTorch runs packed LSTMs step by step
    (5-7x slower, measured). Instead each direction is a plain (fused) unidirectional LSTM: the
    forward one reads the notes left to right, so padding comes after every real note; the
    backward one reads each segment reversed within its own length, so again padding comes last.
    """

    def __init__(self, d: int, n_layers: int, dropout: float):
        super().__init__()
        assert d % 2 == 0, "a bidirectional LSTM needs an even d_model"
        self.fwd = nn.ModuleList(nn.LSTM(d, d // 2, batch_first=True) for _ in range(n_layers))
        self.bwd = nn.ModuleList(nn.LSTM(d, d // 2, batch_first=True) for _ in range(n_layers))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for i, (fwd, bwd) in enumerate(zip(self.fwd, self.bwd)):
            if i:
                h = self.drop(h)
            back, _ = bwd(reverse_padded(h, lengths))
            h = torch.cat([fwd(h)[0], reverse_padded(back, lengths)], dim=-1)
        return h


class HierarchicalAttentionModel(nn.Module):
    def __init__(self, cfg: HierConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.in_proj = nn.Sequential(nn.Linear(cfg.n_features, d), nn.GELU(), nn.Dropout(cfg.dropout))
        # one (forward, backward) pair of unidirectional LSTMs per layer; see BiLSTM
        self.encoder = BiLSTM(d, cfg.n_layers, cfg.dropout)
        if cfg.hierarchical:
            self.beat_pool = AttentionPool(d, cfg.n_heads)
            self.bar_pool = AttentionPool(d, cfg.n_heads)
        self.top_pool = AttentionPool(d, cfg.n_heads)  # over bars, or over notes when flat
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Dropout(cfg.dropout), nn.Linear(d, cfg.n_outputs))

    def encode(self, batch: Batch) -> torch.Tensor:
        """(B, L, D) contextual note embeddings; zeros at padding."""
        h = self.in_proj(batch.x)
        h = self.encoder(h, batch.mask.sum(1))
        return h * batch.mask.unsqueeze(-1)

    def pool(self, h: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Segment embedding (B, D), plus beat and bar embeddings and masks when hierarchical."""
        if not self.cfg.hierarchical:
            seg = self.top_pool(h, batch.mask.unsqueeze(1)).squeeze(1)
            return {"segment": seg}
        note_in_beat = membership(batch.beat, batch.mask)                    # (B, nb, L)
        beats = self.beat_pool(h, note_in_beat)                              # (B, nb, D)
        beat_mask = note_in_beat.any(-1)                                     # (B, nb)
        # the bar of each beat: every note of a beat has the same bar, so take the max over them
        beat_bar = (note_in_beat * batch.bar.unsqueeze(1)).amax(-1)         # (B, nb)
        beat_in_bar = membership(beat_bar, beat_mask)                        # (B, nr, nb)
        bars = self.bar_pool(beats, beat_in_bar)                             # (B, nr, D)
        bar_mask = beat_in_bar.any(-1)                                       # (B, nr)
        seg = self.top_pool(bars, bar_mask.unsqueeze(1)).squeeze(1)          # (B, D)
        return {"segment": seg, "beats": beats, "beat_mask": beat_mask,
                "bars": bars, "bar_mask": bar_mask}

    def forward(self, batch: Batch) -> torch.Tensor:
        """(B, n_outputs) predictions on the standardised target scale."""
        return self.head(self.pool(self.encode(batch), batch)["segment"])


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

