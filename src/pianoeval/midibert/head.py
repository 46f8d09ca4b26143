"""The regression head on the MIDI encoder: pooled statistics of its depths -> 19 dimensions.

Kept apart from ``midibert`` so that a change of head does not invalidate pre-training."""
from __future__ import annotations

import torch
from torch import nn

from pianoeval.midibert.model import MidiBert, MidiBertConfig


class StatsPool(nn.Module):
    """Masked mean and standard deviation over time of each state read, concatenated and
    standardised: f = ([mean_t h_j, sqrt(var_t h_j + eps)]_j - shift) / scale. ``shift`` and
    ``scale`` are buffers (identity until ``set_scaler``): fine-tuning sets them from the
    training rows' pooled features, as a ridge regression's StandardScaler would."""

    def __init__(self, n_features: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def raw(self, states: list[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
        """(B, 2 * d_model * len(states)) pooled features, not standardised."""
        w = valid.unsqueeze(-1).to(states[0].dtype)
        n = w.sum(1).clamp(min=1.0)
        parts = []
        for h in states:
            mean = (h * w).sum(1) / n
            var = (((h - mean[:, None]) ** 2) * w).sum(1) / n
            parts += [mean, torch.sqrt(var + self.eps)]  # eps: finite gradient at var 0
        return torch.cat(parts, dim=1)

    def set_scaler(self, features: torch.Tensor) -> None:
        self.shift.copy_(features.mean(0))
        self.scale.copy_(features.std(0, unbiased=False).clamp(min=1e-6))

    def forward(self, states: list[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
        return (self.raw(states, valid) - self.shift) / self.scale


class MidiBertRegressor(nn.Module):
    """Encoder -> (``layer_mix``: every depth, else the last) -> ``StatsPool`` -> dropout ->
    linear ``n_outputs`` (the 19 dimensions). ``features`` and ``head`` split the two, so a
    frozen encoder's states can be computed once and the head fitted on them."""

    def __init__(self, cfg: MidiBertConfig, n_outputs: int = 19, head_dropout: float = 0.1,
                 layer_mix: bool = False):
        super().__init__()
        self.cfg = cfg
        self.bert = MidiBert(cfg)
        self.layer_mix = layer_mix
        n_states = cfg.n_layers + 1 if layer_mix else 1
        self.pool = StatsPool(2 * cfg.d_model * n_states)
        self.drop = nn.Dropout(head_dropout)
        self.out = nn.Linear(2 * cfg.d_model * n_states, n_outputs)

    def forward(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ids, valid), valid)

    def features(self, ids: torch.Tensor, valid: torch.Tensor) -> list[torch.Tensor]:
        """What the head reads: every depth's states with ``layer_mix``, else the last only."""
        return self.bert.layer_states(ids, valid) if self.layer_mix else [self.bert(ids, valid)]

    def head(self, states: list[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.pool(states, valid)))

    def load_encoder(self, state: dict) -> None:
        """Load pre-trained encoder weights (the MLM heads are dropped: not used here)."""
        state = {k: v for k, v in state.items() if not k.startswith("heads.")}
        missing, unexpected = self.bert.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if not m.startswith("heads.")]:
            raise KeyError(f"pre-trained weights do not fit: missing {missing}, unexpected {unexpected}")
