"""Contrastive audio<->MIDI alignment of the two projection heads (encoders frozen).

Paired rows are the same performance in both modalities. The audio side has several *views*
of each row (renders with different soundfonts, degraded renders): every step draws one
available view per row, so the heads learn what the soundfont does not change.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pianoeval.fusion.model import ProjectionHead
from pianoeval.provenance import loaded_code_digest

log = logging.getLogger(__name__)


@dataclass
class ContrastiveConfig:
    """Head pre-training settings: contrastive_heads of params.yaml (train_fusion sets its own
    d_shared and seed per fold model); no defaults here."""

    d_shared: int  # shared space width (GPU profile: 512)
    temperature: float
    learn_temperature: bool  # CLIP-style learned log-temperature (clamped to >= 0.01)
    distill_weight: float  # + w * MSE(midi_proj, audio_proj.detach())
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    dropout: float
    seed: int

    @classmethod
    def settings(cls, section: dict) -> dict:
        """The entries of a params section (``contrastive_heads``) that are settings here."""
        return {f.name: section[f.name] for f in dataclasses.fields(cls) if f.name in section}


def info_nce(z_audio: torch.Tensor, z_midi: torch.Tensor, temperature) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of B aligned pairs (row i of each is the same music).

    S = z_a z_m^T / tau;  L = (CE(S, diag) + CE(S^T, diag)) / 2, where CE(S, diag) =
    -1/B sum_i log( exp(S_ii) / sum_j exp(S_ij) ). Inputs are L2-normalised (B, d).
    """
    if z_audio.shape != z_midi.shape or z_audio.ndim != 2:
        raise ValueError(f"need two (B, d) batches of equal shape, got {tuple(z_audio.shape)} "
                         f"and {tuple(z_midi.shape)}")
    logits = z_audio @ z_midi.T / temperature
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def retrieval_recall(z_audio: np.ndarray, z_midi: np.ndarray, ks=(1, 5)) -> dict[str, float]:
    """Recall@k both ways: the share of rows whose partner ranks in the top k by cosine
    similarity among all n candidates. Rank = 1 + the number of candidates strictly more
    similar than the partner (ties favour the partner)."""
    z_audio, z_midi = np.asarray(z_audio, float), np.asarray(z_midi, float)
    if z_audio.shape != z_midi.shape:
        raise ValueError(f"shapes differ: {z_audio.shape} vs {z_midi.shape}")
    sim = z_audio @ z_midi.T
    diag = np.diag(sim)
    rank_a2m = 1 + (sim > diag[:, None]).sum(axis=1)
    rank_m2a = 1 + (sim > diag[None, :]).sum(axis=0)
    out = {}
    for k in ks:
        out[f"audio_to_midi@{k}"] = float(np.mean(rank_a2m <= k))
        out[f"midi_to_audio@{k}"] = float(np.mean(rank_m2a <= k))
    return out


def make_heads(d_audio: int, d_midi: int, cfg: ContrastiveConfig) -> torch.nn.ModuleDict:
    torch.manual_seed(cfg.seed)
    return torch.nn.ModuleDict({
        "audio": ProjectionHead(d_audio, cfg.d_shared, dropout=cfg.dropout),
        "midi": ProjectionHead(d_midi, cfg.d_shared, dropout=cfg.dropout)})


def draw_views(views: np.ndarray, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One audio view per row, uniformly among the row's available ones: (V, n, d) -> (n, d)."""
    scores = np.where(available, rng.random(available.shape), -1.0)
    choice = scores.argmax(axis=0)
    return views[choice, np.arange(views.shape[1])]


def train_heads(audio_views: list[np.ndarray], midi: np.ndarray, cfg: ContrastiveConfig,
                heads: torch.nn.ModuleDict | None = None) -> tuple[torch.nn.ModuleDict, list[dict]]:
    """Train (or continue) the projection heads with InfoNCE on paired rows.

    ``audio_views``: list of standardised (n, d_audio) arrays, NaN rows where a view is absent
    (the first view must cover every row); ``midi`` (n, d_midi) standardised. Returns the heads
    (eval mode) and the per-epoch mean loss.
    """
    views = np.stack(audio_views)
    available = ~np.isnan(views).any(axis=2)
    if not available[0].all():
        raise ValueError(f"the first audio view lacks {int((~available[0]).sum())} rows")
    views = np.nan_to_num(views)
    heads = heads or make_heads(views.shape[2], midi.shape[1], cfg)
    log_tau = torch.nn.Parameter(torch.tensor(float(np.log(cfg.temperature))),
                                 requires_grad=cfg.learn_temperature)
    params = list(heads.parameters()) + ([log_tau] if cfg.learn_temperature else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    midi_t = torch.as_tensor(midi, dtype=torch.float32)
    history = []
    for epoch in range(cfg.epochs):
        heads.train()
        audio_t = torch.as_tensor(draw_views(views, available, rng), dtype=torch.float32)
        losses = []
        for idx in torch.randperm(len(midi_t), generator=gen).split(cfg.batch_size):
            if len(idx) < 2:
                continue
            z_a, z_m = heads["audio"](audio_t[idx]), heads["midi"](midi_t[idx])
            tau = log_tau.exp().clamp(min=0.01)
            loss = info_nce(z_a, z_m, tau)
            if cfg.distill_weight:
                loss = loss + cfg.distill_weight * F.mse_loss(z_m, z_a.detach())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        "temperature": float(log_tau.exp())})
    heads.eval()
    return heads, history


def heads_key(audio_views: list[np.ndarray], midi: np.ndarray, cfg: ContrastiveConfig) -> str:
    """Digest of everything :func:`train_heads` depends on: the code (every loaded pianoeval
    module, torch's and numpy's versions), the settings and the bytes of every input array."""
    h = hashlib.sha256(loaded_code_digest().encode())
    h.update(repr(dataclasses.asdict(cfg)).encode())
    for array in [*audio_views, midi]:
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype}{array.shape}".encode() + array.tobytes())
    return h.hexdigest()


def cached_heads(audio_views: list[np.ndarray], midi: np.ndarray, cfg: ContrastiveConfig,
                 folder: str | Path | None) -> torch.nn.ModuleDict:
    """:func:`train_heads`' heads, kept in ``folder`` under :func:`heads_key` (None: nothing
    kept). The train_fusion variants that pre-train their heads alike (same rows, settings and
    seed) train them once: the first stage to need them writes them, the others read them.

    A hit also leaves torch's global random state where training would have left it (dropout
    draws from it), so the training that follows is the same as after a miss, bit for bit. An
    unreadable entry is logged with its path and trained again."""
    if folder is None:
        return train_heads(audio_views, midi, cfg)[0]
    path = Path(folder) / f"{heads_key(audio_views, midi, cfg)}.pt"
    if path.exists():
        try:
            saved = torch.load(path, weights_only=True)
            heads = make_heads(audio_views[0].shape[1], midi.shape[1], cfg)
            heads.load_state_dict(saved["heads"])
            torch.set_rng_state(saved["rng_state"])
            return heads.eval()
        except Exception as exc:  # cut short by a kill, or written by other code: train again
            log.warning("%s: unreadable cached heads (%s: %s); training them again", path,
                        type(exc).__name__, exc)
    heads, _ = train_heads(audio_views, midi, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"heads": heads.state_dict(), "rng_state": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)  # atomic: a kill never leaves a half-written entry under the key
    return heads


@torch.no_grad()
def project(heads: torch.nn.ModuleDict, audio: np.ndarray, midi: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    heads.eval()
    return (heads["audio"](torch.as_tensor(audio, dtype=torch.float32)).numpy(),
            heads["midi"](torch.as_tensor(midi, dtype=torch.float32)).numpy())


def standardized(views: list[np.ndarray], midi: np.ndarray, train: np.ndarray
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """Views and MIDI z-scored with statistics of the ``train`` rows only (one scaler over
    every view's training rows, so the views stay comparable); absent view rows stay NaN."""
    from pianoeval.fusion.data import Standardizer

    stacked = np.concatenate([v[train] for v in views])
    audio_scaler = Standardizer().fit(stacked[~np.isnan(stacked).any(axis=1)])
    midi_scaler = Standardizer().fit(midi[train])
    return [audio_scaler.transform_view(v) for v in views], midi_scaler.transform(midi)


def work_groups(works: np.ndarray, n_groups: int, seed: int) -> list[str]:
    """Each row's group: the sorted distinct works shuffled (seeded) and dealt round-robin."""
    distinct = np.random.default_rng(seed).permutation(sorted(set(works)))
    group = {w: str(i % n_groups) for i, w in enumerate(distinct)}
    return [group[w] for w in works]


def heldout_retrieval(views: list[np.ndarray], view_names: list[str], midi: np.ndarray,
                      folds: np.ndarray, cfg: ContrastiveConfig, ks=(1, 5)) -> dict:
    """Recall@k on each held-out fold (e.g. a work), before (the same heads untrained) and
    after contrastive training on the other folds; per audio view and averaged over folds.
    Rows whose fold is "" are never held out (extra training pairs)."""
    folds = np.asarray(folds, dtype=str)
    per_fold = {}
    for fold in sorted(set(folds) - {""}):
        train, held = folds != fold, folds == fold
        z_views, z_midi = standardized(views, midi, train)
        before = make_heads(views[0].shape[1], midi.shape[1], cfg)
        after, history = train_heads([v[train] for v in z_views], z_midi[train], cfg)
        result = {"n": int(held.sum()), "final_loss": history[-1]["loss"]}
        for name, z in zip(view_names, z_views):
            rows = held & ~np.isnan(z).any(axis=1)
            if rows.sum() < 2:
                continue
            result[name] = {stage: retrieval_recall(*project(heads, z[rows], z_midi[rows]), ks=ks)
                            for stage, heads in (("before", before), ("after", after))}
            result[name]["n"] = int(rows.sum())
            result[name]["chance"] = {f"@{k}": min(1.0, k / rows.sum()) for k in ks}
        per_fold[str(fold)] = result
    return {"folds": per_fold, "mean": fold_means(per_fold, view_names)}


def fold_means(per_fold: dict, view_names: list[str]) -> dict:
    """Per audio view, each recall (before, after training, chance) averaged over the held-out
    folds that scored the view."""
    mean = {}
    for name in view_names:
        scored = [r[name] for r in per_fold.values() if name in r]
        if scored:
            mean[name] = {stage: {m: float(np.mean([s[stage][m] for s in scored]))
                                  for m in scored[0][stage]}
                          for stage in ("before", "after", "chance")}
    return mean
