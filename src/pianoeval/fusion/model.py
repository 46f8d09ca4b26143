"""Audio + MIDI fusion: one model that judges a performance from both views, or from either alone.

Each modality arrives as one fixed vector from a frozen encoder (audio: a pooled spectral
embedding; MIDI: symbolic features), already standardised. The model is

1. ``heads``: one ``ProjectionHead`` per modality, x -> unit vector in a shared space of width
   ``d_shared``. These are the heads of the contrastive (audio <-> MIDI) pre-training stage and
   can be loaded from it (``load_projection_heads``); they are the "encoder" that staged
   unfreezing (``param_groups``) keeps frozen first and then thaws from the top.
2. ``fusion``: one of ``FUSIONS`` maps the two projected vectors and a presence mask to one
   vector of width ``fusion.out_dim``. A missing modality never influences the output: its
   vector is zeroed first and every operator treats that zero vector explicitly (see each one).
3. ``trunk``: Linear -> GELU -> Dropout, shared by the outputs:
   ``regress`` (the 19 ratings, on the standardised target scale), ``ordinal`` (optional
   cumulative logits, K - 1 per rating), ``quality`` (one scalar for degradation-tier ranking)
   and ``tier`` (4 Snorkel tier logits).

Presence: ``present`` (B, 2) bool, column 0 audio, column 1 MIDI. In training mode
``ModalityDropout`` hides one of the two modalities of some complete rows so the model also
learns to judge from one view, which it must do at test time for rows with a missing modality.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from pianoeval.data.dimensions import N_DIMS
from pianoeval.degrade.tiers import N_TIERS

MODALITIES = ("audio", "midi")  # the column order of every presence mask


def _check_present(present: torch.Tensor, batch: int) -> None:
    if present.dtype != torch.bool or present.shape != (batch, 2):
        raise ValueError(f"present must be a bool tensor of shape ({batch}, 2) [audio, midi], "
                         f"got {present.dtype} {tuple(present.shape)}")


def _zero_missing(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x (B, d) with the rows where keep (B,) is False set to 0. torch.where, not x * keep:
    0 * NaN is NaN, and the rows of a missing modality may hold garbage."""
    return torch.where(keep[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device))


# ----------------------------------------------------------------------------- building blocks


class ProjectionHead(nn.Module):
    """z = normalize(fc2(dropout(gelu(norm(fc1(x)))))), with normalize(v) = v / max(||v||_2, eps).

    fc1: d_in -> hidden (default d_shared), fc2: hidden -> d_shared. The output lies on the unit
    sphere (the space the contrastive loss compares in).
    """

    def __init__(self, d_in: int, d_shared: int = 512, hidden: int | None = None, dropout: float = 0.0):
        super().__init__()
        hidden = hidden or d_shared
        self.fc1 = nn.Linear(d_in, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, d_shared)

    def layers_from_output(self) -> list[nn.Module]:
        """The layers with parameters, output first: what staged unfreezing thaws in order."""
        return [self.fc2, self.norm, self.fc1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc2(self.drop(F.gelu(self.norm(self.fc1(x))))), dim=-1)


class ModalityDropout(nn.Module):
    """Training-time augmentation of the presence mask.

    For each row with both modalities, with probability p hide exactly one of them (audio or
    MIDI with probability 1/2 each); rows with one (or no) modality are left alone, so a row
    never loses its last view. Over rows with both modalities the drop rate is p, split p/2
    audio, p/2 MIDI. Eval mode: identity.
    """

    def __init__(self, p: float = 0.15, generator: torch.Generator | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"modality dropout p must be in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def forward(self, present: torch.Tensor) -> torch.Tensor:
        _check_present(present, present.shape[0])
        if not self.training or self.p == 0.0:
            return present
        B = present.shape[0]
        # draw on the generator's device (a CPU generator cannot fill a CUDA tensor), then move
        device = self.generator.device if self.generator is not None else present.device
        u = torch.rand(2, B, generator=self.generator, device=device).to(present.device)
        drop = present.all(dim=1) & (u[0] < self.p)
        drop_audio = u[1] < 0.5
        out = present.clone()
        out[:, 0] &= ~(drop & drop_audio)
        out[:, 1] &= ~(drop & ~drop_audio)
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ----------------------------------------------------------------------------- fusion operators
# All: forward(a, m, present) -> (B, out_dim), with a, m (B, d) and present (B, 2) bool.


class ConcatFusion(nn.Module):
    """h = [a * p_a ; m * p_m] (out 2d): a missing modality is a block of zeros."""

    def __init__(self, d: int):
        super().__init__()
        self.out_dim = 2 * d

    def forward(self, a, m, present):
        return torch.cat([_zero_missing(a, present[:, 0]), _zero_missing(m, present[:, 1])], dim=-1)


class GatedFusion(nn.Module):
    """Gated Multimodal Unit (Arevalo et al. 2017):

        h_a = tanh(W_a a), h_m = tanh(W_m m), z = sigmoid(W_z [a; m]), h = z * h_a + (1 - z) * h_m

    With one modality the gate is forced to it (audio only: z = 1; MIDI only: z = 0), so the
    missing one's h is multiplied by exactly 0. Out width ``out`` (default d).
    """

    def __init__(self, d: int, out: int | None = None):
        super().__init__()
        out = out or d
        self.out_dim = out
        self.w_a = nn.Linear(d, out)
        self.w_m = nn.Linear(d, out)
        self.w_z = nn.Linear(2 * d, out)

    def forward(self, a, m, present):
        pa, pm = present[:, 0], present[:, 1]
        a, m = _zero_missing(a, pa), _zero_missing(m, pm)
        h_a, h_m = torch.tanh(self.w_a(a)), torch.tanh(self.w_m(m))
        z = torch.sigmoid(self.w_z(torch.cat([a, m], dim=-1)))
        z = torch.where((pa & ~pm)[:, None], torch.ones_like(z), z)
        z = torch.where((pm & ~pa)[:, None], torch.zeros_like(z), z)
        return z * h_a + (1 - z) * h_m


class LowRankFusion(nn.Module):
    """Low-rank Multimodal Fusion (Liu et al. 2018): the bilinear tensor fusion of [a; 1] and
    [m; 1] with its weight tensor factored into ``rank`` pairs,

        h = sum_r w_r * ([a; 1] W_a^r) * ([m; 1] W_m^r) + b,   W_a, W_m: (rank, d + 1, out)

    The appended 1 keeps the unimodal terms (and a constant) in the product. A missing modality
    is the zero vector with its 1 kept, so its factor reduces to its last ("bias") row, the
    same for every input: h is then a learned linear function of the other modality alone.
    """

    def __init__(self, d: int, out: int | None = None, rank: int = 4):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LMF rank must be >= 1, got {rank}")
        out = out or d
        self.out_dim = out
        self.rank = rank
        # xavier-normal per rank slice, std = sqrt(2 / (d + 1 + out)), as in the reference code;
        # larger factors would make the product of two of them explode or vanish at init
        std = math.sqrt(2.0 / (d + 1 + out))
        self.factor_a = nn.Parameter(torch.randn(rank, d + 1, out) * std)
        self.factor_m = nn.Parameter(torch.randn(rank, d + 1, out) * std)
        self.rank_weight = nn.Parameter(torch.randn(rank) * math.sqrt(2.0 / (1 + rank)))
        self.bias = nn.Parameter(torch.zeros(out))

    def forward(self, a, m, present):
        a, m = _zero_missing(a, present[:, 0]), _zero_missing(m, present[:, 1])
        a1 = F.pad(a, (0, 1), value=1.0)                         # (B, d + 1)
        m1 = F.pad(m, (0, 1), value=1.0)
        fa = torch.einsum("bi,rio->bro", a1, self.factor_a)      # (B, rank, out)
        fm = torch.einsum("bi,rio->bro", m1, self.factor_m)
        return torch.einsum("r,bro->bo", self.rank_weight, fa * fm) + self.bias


class FiLMFusion(nn.Module):
    """Feature-wise linear modulation of audio by MIDI:

        gamma, beta = split(W m + c),   h = (1 + gamma) * a + beta     (out d)

    Missing MIDI: gamma = beta = 0, so h = a (explicitly, not W 0 + c = c). Missing audio: a = 0,
    so h = beta. The linear layer starts at zero, so the operator starts as the identity on
    audio and MIDI learns to bend it.
    """

    def __init__(self, d: int):
        super().__init__()
        self.out_dim = d
        self.film = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, a, m, present):
        pm = present[:, 1]
        a = _zero_missing(a, present[:, 0])
        gamma, beta = _zero_missing(self.film(_zero_missing(m, pm)), pm).chunk(2, dim=-1)
        return (1 + gamma) * a + beta


class CrossAttentionFusion(nn.Module):
    """MIDI tokens attend to audio tokens. Kept as a control: it is the fusion that failed in
    the report (one pooled vector per modality has no real sequence to attend over).

    Each d-vector is cut into T = n_tokens tokens of width w = d / T, plus a learned position
    embedding per modality and token:

        A = a.view(T, w) + P_a,  M = m.view(T, w) + P_m
        H = LayerNorm(M + MHA(query=M, key=A, value=A))
        h = [mean_t H_t ; mean_t A_t]                               (out_dim = 2 w = 2 d / T)

    The output is not projected back up to d: the narrow pooled vector is part of the control.
    Missing MIDI: M = 0 (no position embedding either). Missing audio: A = 0 and the attention
    output is set to 0. That is done with torch.where on the output instead of a
    key_padding_mask: a row whose keys are all masked gives NaN from the softmax, and the NaN
    would come back through the backward pass even where the forward value is replaced.
    """

    def __init__(self, d: int, n_tokens: int = 8, n_heads: int = 4):
        super().__init__()
        if d % n_tokens:
            raise ValueError(f"cross-attention: d={d} is not divisible by n_tokens={n_tokens}")
        width = d // n_tokens
        if width % n_heads:
            raise ValueError(f"cross-attention: token width d/n_tokens={width} is not divisible "
                             f"by n_heads={n_heads}")
        self.n_tokens, self.width = n_tokens, width
        self.out_dim = 2 * width
        self.pos_audio = nn.Parameter(torch.randn(n_tokens, width) * 0.02)
        self.pos_midi = nn.Parameter(torch.randn(n_tokens, width) * 0.02)
        self.attn = nn.MultiheadAttention(width, n_heads, batch_first=True)
        self.norm = nn.LayerNorm(width)

    def tokens(self, x: torch.Tensor, pos: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        t = x.view(x.shape[0], self.n_tokens, self.width) + pos
        return torch.where(keep[:, None, None], t, torch.zeros((), dtype=t.dtype, device=t.device))

    def forward(self, a, m, present):
        pa, pm = present[:, 0], present[:, 1]
        A = self.tokens(_zero_missing(a, pa), self.pos_audio, pa)    # (B, T, w)
        M = self.tokens(_zero_missing(m, pm), self.pos_midi, pm)
        att, _ = self.attn(M, A, A, need_weights=False)
        att = torch.where(pa[:, None, None], att, torch.zeros((), dtype=att.dtype, device=att.device))
        H = self.norm(M + att)
        return torch.cat([H.mean(dim=1), A.mean(dim=1)], dim=-1)


class SingleModality(nn.Module):
    """Fusion of a one-modality model: h = the projection of that modality (0 where missing)."""

    def __init__(self, d: int, modality: str):
        super().__init__()
        self.out_dim = d
        self.col = MODALITIES.index(modality)

    def forward(self, a, m, present):
        return _zero_missing((a, m)[self.col], present[:, self.col])


FUSIONS = {
    "concat": ConcatFusion,
    "gated": GatedFusion,
    "lmf": LowRankFusion,
    "film": FiLMFusion,
    "cross_attention": CrossAttentionFusion,
}


def make_fusion(name: str, d: int, **kw) -> nn.Module:
    """The fusion operator ``FUSIONS[name](d, **kw)``."""
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; choose one of {sorted(FUSIONS)}")
    return FUSIONS[name](d, **kw)


# ----------------------------------------------------------------------------- the model


class FusionRegressor(nn.Module):
    """Projection heads -> fusion -> trunk -> (ratings, ordinal logits, quality, tier logits).

    ``modalities``: ("audio", "midi"), ("audio",) or ("midi",). A one-modality model has no head
    for the other one, treats it as missing in every row, and fuses by identity (out d_shared).
    ``n_ordinal_levels`` K: 0 for none, else >= 2 (K - 1 cumulative logits per rating).
    """

    def __init__(self, d_audio: int, d_midi: int, n_out: int = N_DIMS, d_shared: int = 512,
                 fusion: str = "gated", head_hidden: int = 256, dropout: float = 0.1,
                 modality_dropout: float = 0.15, n_ordinal_levels: int = 0,
                 fusion_kw: dict | None = None, modalities: tuple[str, ...] = MODALITIES):
        super().__init__()
        modalities = tuple(modalities)
        if not modalities or len(set(modalities)) != len(modalities) or set(modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {modalities}")
        if n_ordinal_levels == 1 or n_ordinal_levels < 0:
            raise ValueError(f"n_ordinal_levels must be 0 (no ordinal head) or >= 2, got {n_ordinal_levels}")
        self.modalities = tuple(m for m in MODALITIES if m in modalities)  # canonical order
        self.n_out, self.d_shared, self.n_ordinal_levels = n_out, d_shared, n_ordinal_levels
        d_in = {"audio": d_audio, "midi": d_midi}
        self.heads = nn.ModuleDict({m: ProjectionHead(d_in[m], d_shared) for m in self.modalities})
        if len(self.modalities) == 2:
            self.fusion = make_fusion(fusion, d_shared, **(fusion_kw or {}))
            self.modality_dropout = ModalityDropout(modality_dropout)
        else:
            # nothing to fuse and nothing to drop: dropping the only view would leave no input
            self.fusion = SingleModality(d_shared, self.modalities[0])
            self.modality_dropout = ModalityDropout(0.0)
        self.trunk = nn.Sequential(nn.Linear(self.fusion.out_dim, head_hidden), nn.GELU(), nn.Dropout(dropout))
        self.regress = nn.Linear(head_hidden, n_out)
        self.ordinal = nn.Linear(head_hidden, n_out * (n_ordinal_levels - 1)) if n_ordinal_levels else None
        self.quality = nn.Linear(head_hidden, 1)
        self.tier = nn.Linear(head_hidden, N_TIERS)

    def project(self, x: torch.Tensor | None, name: str, keep: torch.Tensor, batch: int,
                like: torch.Tensor) -> torch.Tensor:
        """(B, d_shared): the head's output where keep, 0 elsewhere (or everywhere: no head)."""
        if name not in self.heads or x is None:
            return like.new_zeros(batch, self.d_shared)
        # zero the input first so a NaN in a missing row never reaches the head (nor its grads)
        return _zero_missing(self.heads[name](_zero_missing(x, keep)), keep)

    def forward(self, audio: torch.Tensor | None, midi: torch.Tensor | None,
                present: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """audio (B, d_audio), midi (B, d_midi): either may be None (missing in every row).
        present (B, 2) bool [audio, midi]; None means every given input is present."""
        given = [x for x in (audio, midi) if x is not None]
        if not given:
            raise ValueError("FusionRegressor needs at least one of audio, midi")
        B, like = given[0].shape[0], given[0]
        if present is None:
            present = torch.tensor([audio is not None, midi is not None], device=like.device).expand(B, 2)
        _check_present(present, B)
        in_model = torch.tensor([m in self.heads for m in MODALITIES], device=present.device)
        given_mask = torch.tensor([audio is not None, midi is not None], device=present.device)
        present = self.modality_dropout(present & in_model & given_mask)
        z_audio = self.project(audio, "audio", present[:, 0], B, like)
        z_midi = self.project(midi, "midi", present[:, 1], B, like)
        h = self.trunk(self.fusion(z_audio, z_midi, present))
        ordinal = None
        if self.ordinal is not None:
            ordinal = self.ordinal(h).view(B, self.n_out, self.n_ordinal_levels - 1)
        return {"pred": self.regress(h), "ordinal": ordinal, "quality": self.quality(h).squeeze(-1),
                "tier": self.tier(h), "z_audio": z_audio, "z_midi": z_midi, "present": present}

    def load_projection_heads(self, state: dict) -> None:
        """Load contrastively pre-trained heads from ``heads.state_dict()`` ("audio.*", "midi.*").
        Keys of a modality this model lacks are ignored; every head it has must be complete."""
        own = {k: v for k, v in state.items() if k.split(".", 1)[0] in self.heads}
        lacking = [m for m in self.heads if not any(k.startswith(m + ".") for k in own)]
        if lacking:
            raise ValueError(f"no pre-trained weights for projection head(s) {lacking} "
                             f"(keys found: {sorted(state)[:6]}...)")
        self.heads.load_state_dict(own, strict=True)


def param_groups(model: FusionRegressor, stage: int, lr: float, encoder_lr_factor: float = 0.1,
                 top_k: int = 1) -> list[dict]:
    """Staged unfreezing: set requires_grad on every parameter and return optimizer groups.

    The "encoder" of this model is its projection heads (pre-trained in the contrastive stage).

    - stage 1: the heads are frozen; everything else (fusion, trunk, regress, ordinal, quality,
      tier) trains at ``lr``. Groups: [{"name": "fusion", "lr": lr}].
    - stage 2: as stage 1, plus the top ``top_k`` parameterised layers of every head, counted
      from the output (1: fc2; 2: fc2 + LayerNorm; >= 3: the whole head), train at
      ``lr * encoder_lr_factor``: a smaller step so the fusion does not wash out what the
      contrastive stage learnt. Groups: [fusion group, {"name": "encoder", ...}].

    Frozen parameters get requires_grad False and appear in no group.
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 (heads frozen) or 2 (top of the heads thawed), got {stage}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if lr <= 0 or encoder_lr_factor <= 0:
        raise ValueError(f"lr and encoder_lr_factor must be > 0, got {lr}, {encoder_lr_factor}")
    head_params = {id(p) for p in model.heads.parameters()}
    thawed = []
    if stage == 2:
        for head in model.heads.values():
            for layer in head.layers_from_output()[:top_k]:
                thawed.extend(layer.parameters())
    for p in model.parameters():
        p.requires_grad_(id(p) not in head_params)
    for p in thawed:
        p.requires_grad_(True)
    groups = [{"params": [p for p in model.parameters() if id(p) not in head_params],
               "lr": lr, "name": "fusion"}]
    if thawed:
        groups.append({"params": thawed, "lr": lr * encoder_lr_factor, "name": "encoder"})
    return groups
