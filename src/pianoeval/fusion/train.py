"""Training one audio+MIDI fold model (``fit_fold``) and cross-fitting it over the protocols.

A fold model sees only its training rows (and the degraded samples made from them). Steps are
full-batch (a few hundred rows of fixed vectors), so an epoch is one optimiser step:

1. z-score both modalities and the labels on the training rows;
2. (``pretrain_heads``) align the two projection heads contrastively on the training rows
   (and, with ``pretrain_windows``, the unlabelled ASAP/MAESTRO window pairs);
3. stage 1: heads frozen, fusion + trunk + outputs trained; stage 2: the top ``unfreeze_top_k``
   layers of each head join at ``encoder_lr_factor`` x the learning rate (heads trained from
   scratch skip the staging: everything trains from the start);
4. each stage early-stops on the inner validation rows (never the protocol's held-out fold);
5. (``refit``) retrain on training + validation rows for the best epoch counts.

The loss is a point loss (mse | huber | bootstrap, LDS-weighted if asked) plus, each with its
weight: same-passage margin ranking, a CORAL/CORN ordinal head, degradation-tier margin
ranking and Snorkel's tier probabilities on the unlabelled degraded samples.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pianoeval.fusion import losses as L
from pianoeval.fusion.contrastive import ContrastiveConfig, cached_heads, draw_views
from pianoeval.fusion.data import Aux, FusionData, Standardizer, same_passage_pairs
from pianoeval.fusion.model import FusionRegressor, param_groups
from pianoeval.training import EarlyStopping

log = logging.getLogger(__name__)


@dataclass
class FusionConfig:
    """One fold model's settings: train_fusion.model of params.yaml with the variant's overrides
    (no defaults here: params.yaml is their home)."""

    modalities: tuple
    soundfonts: tuple  # training views; the first is predicted from
    fusion: str
    fusion_kw: dict
    d_shared: int
    head_hidden: int
    dropout: float
    modality_dropout: float
    pretrain_heads: bool
    pretrain_windows: bool  # + the ASAP window pairs (FusionData.windows) in pre-training
    stage1_epochs: int
    stage2_epochs: int
    unfreeze_top_k: int
    encoder_lr_factor: float
    patience: int
    lr: float
    weight_decay: float
    loss: str  # mse | huber | bootstrap
    huber_delta: float
    bootstrap_beta: float
    lds: bool
    lds_bins: int
    lds_sigma: float
    lds_power: float
    rank_weight: float  # alpha of the same-passage margin ranking loss
    rank_margin: float
    rank_pairs: int  # pairs drawn per step
    ordinal: str  # none | coral | corn (then the prediction is the ordinal head's)
    ordinal_levels: int
    ordinal_weight: float
    tier_rank_weight: float  # degradation-tier pairs (issue 5)
    tier_margin: float
    tier_pairs: int
    weak_weight: float  # Snorkel tier probabilities on degraded samples
    weak_samples: int
    refit: bool
    n_seeds: int
    seed: int

    @classmethod
    def from_dict(cls, values: dict) -> "FusionConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = sorted(set(values) - names), sorted(names - set(values))
        if unknown:
            raise KeyError(f"unknown train_fusion settings {unknown} (have: {sorted(names)})")
        if missing:
            raise KeyError(f"missing train_fusion settings {missing}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    @property
    def uses_aux(self) -> bool:
        return self.tier_rank_weight > 0 or self.weak_weight > 0

    @property
    def staged(self) -> bool:
        """Contrastively pre-trained heads, then staged unfreezing (both modalities only)."""
        return self.pretrain_heads and set(self.modalities) == {"audio", "midi"}

    @property
    def uses_windows(self) -> bool:
        return self.staged and self.pretrain_windows


@dataclass
class Prepared:
    """One fold's standardised tensors."""

    views: np.ndarray  # (V, n, d_audio) standardised audio views, 0 where absent
    available: np.ndarray  # (V, n)
    midi: torch.Tensor
    y: torch.Tensor  # standardised labels
    y_raw: np.ndarray
    scalers: tuple
    aux: dict | None
    windows: tuple[list[np.ndarray], np.ndarray] | None = None  # pre-training views, MIDI


def prepare(data: FusionData, rows: np.ndarray, cfg: FusionConfig, aux: Aux | None) -> Prepared:
    """Scalers fitted on ``rows``; every PercePiano row and the usable degraded samples
    transformed."""
    missing = [sf for sf in cfg.soundfonts if sf not in data.audio]
    if missing:
        raise KeyError(f"no audio embeddings for soundfonts {missing} (have {sorted(data.audio)})")
    raw_views = np.stack([data.audio[sf] for sf in cfg.soundfonts])
    available = ~np.isnan(raw_views).any(axis=2)
    train_audio = raw_views[:, rows][available[:, rows]]
    audio_scaler = Standardizer().fit(train_audio)
    midi_scaler = Standardizer().fit(data.midi[rows])
    y_mean, y_std = data.y[rows].mean(0), data.y[rows].std(0) + 1e-8
    views = np.where(available[..., None], audio_scaler.transform(
        raw_views.reshape(-1, raw_views.shape[2])).reshape(raw_views.shape), 0.0)
    prepared_aux = None
    if aux is not None and cfg.uses_aux:
        train_items = set(data.segments[rows])
        labelled = set(data.segments)
        keep = np.array([i in train_items or i not in labelled for i in aux.item])
        sub = aux.subset(keep)
        has_audio = ~np.isnan(sub.audio).any(axis=1)
        prepared_aux = {
            "audio": torch.as_tensor(np.where(has_audio[:, None], audio_scaler.transform(sub.audio), 0.0),
                                     dtype=torch.float32),
            "midi": torch.as_tensor(midi_scaler.transform(sub.midi), dtype=torch.float32),
            "present": torch.as_tensor(np.stack([has_audio, np.ones(len(sub.tier), bool)], 1)),
            "tier": torch.as_tensor(sub.tier), "pairs": sub.pairs,
            "weak": sub.weak, "weak_rows": np.flatnonzero(~np.isnan(sub.weak).any(axis=1)),
        }
    windows = None
    if data.windows is not None and cfg.uses_windows:
        windows = ([audio_scaler.transform_view(data.windows.audio[sf]) for sf in cfg.soundfonts],
                   midi_scaler.transform(data.windows.midi))
    return Prepared(views=views, available=available, windows=windows,
                    midi=torch.as_tensor(midi_scaler.transform(data.midi), dtype=torch.float32),
                    y=torch.as_tensor((data.y - y_mean) / y_std, dtype=torch.float32),
                    y_raw=data.y, scalers=(audio_scaler, midi_scaler, y_mean, y_std),
                    aux=prepared_aux)


class FoldTrainer:
    """Everything one training run of a fold model needs; ``run`` returns the best state."""

    def __init__(self, data: FusionData, prep: Prepared, train: np.ndarray, cfg: FusionConfig,
                 seed: int, contrastive: dict, heads_cache: str | None = None):
        self.data, self.prep, self.cfg, self.seed = data, prep, cfg, seed
        self.contrastive = contrastive  # contrastive_heads settings for the head pre-training
        self.heads_cache = heads_cache  # folder of pre-trained heads (cached_heads), or None
        self.train = np.flatnonzero(train)
        self.y_range = (data.y[self.train].min(0), data.y[self.train].max(0))
        self.rng = np.random.default_rng(seed)
        self.pairs = same_passage_pairs(data.passages[self.train])  # indices into self.train
        self.weights = None
        if cfg.lds:
            self.weights = torch.as_tensor(L.lds_weights(
                prep.y_raw[self.train], cfg.lds_bins, cfg.lds_sigma, cfg.lds_power),
                dtype=torch.float32)
        self.levels = L.ordinal_levels(torch.as_tensor(prep.y_raw[self.train]), cfg.ordinal_levels) \
            if cfg.ordinal != "none" else None

    def model(self) -> FusionRegressor:
        cfg = self.cfg
        torch.manual_seed(self.seed)
        model = FusionRegressor(
            self.prep.views.shape[2], self.prep.midi.shape[1], d_shared=cfg.d_shared,
            fusion=cfg.fusion, head_hidden=cfg.head_hidden, dropout=cfg.dropout,
            modality_dropout=cfg.modality_dropout, fusion_kw=dict(cfg.fusion_kw),
            n_ordinal_levels=cfg.ordinal_levels if cfg.ordinal != "none" else 0,
            modalities=tuple(cfg.modalities))
        if cfg.staged:
            ccfg = ContrastiveConfig(**{**self.contrastive, "d_shared": cfg.d_shared,
                                        "seed": self.seed})
            views = [np.where(a[self.train, None], v[self.train], np.nan)
                     for v, a in zip(self.prep.views, self.prep.available)]
            midi = self.prep.midi[self.train].numpy()
            if self.prep.windows is not None:
                window_views, window_midi = self.prep.windows
                views = [np.concatenate([v, w]) for v, w in zip(views, window_views)]
                midi = np.concatenate([midi, window_midi])
            model.load_projection_heads(cached_heads(views, midi, ccfg, self.heads_cache)
                                        .state_dict())
        return model

    def inputs(self, rows: np.ndarray, train: bool):
        """Audio (a random view per row when training, else the first), MIDI, presence."""
        if train:
            audio = draw_views(self.prep.views[:, rows], self.prep.available[:, rows], self.rng)
            has_audio = self.prep.available[:, rows].any(axis=0)
        else:
            audio, has_audio = self.prep.views[0, rows], self.prep.available[0, rows]
        present = torch.as_tensor(np.stack([has_audio, np.ones(len(rows), bool)], axis=1))
        return torch.as_tensor(audio, dtype=torch.float32), self.prep.midi[rows], present

    def point_prediction(self, out: dict) -> torch.Tensor:
        """Standardised prediction: the regression head's, or the decoded ordinal head's."""
        if self.cfg.ordinal == "none":
            return out["pred"]
        decode = L.coral_expected_level if self.cfg.ordinal == "coral" else L.corn_expected_level
        value = L.ordinal_to_value(decode(out["ordinal"]), self.cfg.ordinal_levels)
        _, _, y_mean, y_std = self.prep.scalers
        return (value - torch.as_tensor(y_mean, dtype=torch.float32)) / torch.as_tensor(
            y_std, dtype=torch.float32)

    def loss(self, model: FusionRegressor) -> torch.Tensor:
        cfg, prep = self.cfg, self.prep
        out = model(*self.inputs(self.train, train=True))
        y = prep.y[self.train]
        if cfg.loss == "huber":
            total = L.huber(out["pred"], y, delta=cfg.huber_delta, weight=self.weights)
        elif cfg.loss == "bootstrap":
            total = L.bootstrap(out["pred"], y, beta=cfg.bootstrap_beta, weight=self.weights)
        elif cfg.loss == "mse":
            total = L.mse(out["pred"], y, weight=self.weights)
        else:
            raise ValueError(f"unknown loss {cfg.loss!r} (have: mse, huber, bootstrap)")
        if cfg.rank_weight and len(self.pairs):
            pick = self.pairs[self.rng.choice(len(self.pairs), min(cfg.rank_pairs, len(self.pairs)),
                                              replace=False)]
            total = total + cfg.rank_weight * L.pairwise_margin_ranking(
                out["pred"], y, torch.as_tensor(pick), margin=cfg.rank_margin)
        if cfg.ordinal != "none":
            ordinal = L.coral_loss if cfg.ordinal == "coral" else L.corn_loss
            total = total + cfg.ordinal_weight * ordinal(out["ordinal"], self.levels)
        aux = prep.aux
        if aux is not None and cfg.tier_rank_weight and len(aux["pairs"]):
            pick = aux["pairs"][self.rng.choice(len(aux["pairs"]),
                                                min(cfg.tier_pairs, len(aux["pairs"])), replace=False)]
            rows, inverse = np.unique(pick, return_inverse=True)
            present = aux["present"][rows]
            a_out = model(aux["audio"][rows], aux["midi"][rows], present)
            inverse = inverse.reshape(pick.shape)
            # an audio-only model cannot score the MIDI-only samples
            usable = present[:, 0].numpy() if "midi" not in cfg.modalities else np.ones(len(rows), bool)
            keep = usable[inverse].all(axis=1)
            if keep.any():
                total = total + cfg.tier_rank_weight * L.tier_ranking(
                    a_out["quality"], aux["tier"][rows], torch.as_tensor(inverse[keep]),
                    margin=cfg.tier_margin)
        if aux is not None and cfg.weak_weight and len(aux["weak_rows"]) and "midi" in cfg.modalities:
            rows = self.rng.choice(aux["weak_rows"], min(cfg.weak_samples, len(aux["weak_rows"])),
                                   replace=False)
            w_out = model(aux["audio"][rows], aux["midi"][rows], aux["present"][rows])
            total = total + cfg.weak_weight * L.weak_label_loss(
                w_out["tier"], torch.as_tensor(aux["weak"][rows], dtype=torch.float32))
        return total

    @torch.no_grad()
    def val_loss(self, model: FusionRegressor, rows: np.ndarray) -> float:
        model.eval()
        pred = self.point_prediction(model(*self.inputs(rows, train=False)))
        model.train()
        return float(torch.nn.functional.mse_loss(pred, self.prep.y[rows]))

    def run(self, val: np.ndarray | None, epochs: tuple[int, ...] | None = None):
        """Train; with ``val`` early-stop each stage on it, else run ``epochs`` per stage.
        Returns (model at its best, epochs per stage, history)."""
        cfg = self.cfg
        model = self.model()
        staged = cfg.staged
        stages = [(1, cfg.stage1_epochs), (2, cfg.stage2_epochs)] if staged \
            else [(0, cfg.stage1_epochs + cfg.stage2_epochs)]
        val_rows = np.flatnonzero(val) if val is not None else None
        best_epochs, history = [], []
        for i, (stage, max_epochs) in enumerate(stages):
            if stage == 0:
                for p in model.parameters():
                    p.requires_grad_(True)
                groups = [{"params": list(model.parameters()), "lr": cfg.lr, "name": "all"}]
            else:
                groups = param_groups(model, stage, cfg.lr, cfg.encoder_lr_factor, cfg.unfreeze_top_k)
            opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
            n_epochs = max_epochs if epochs is None else epochs[i]
            stopper = EarlyStopping(cfg.patience, min_delta=1e-5)
            stopper.update(0, math.inf, model)  # the stage's starting point
            model.train()
            for epoch in range(1, n_epochs + 1):
                opt.zero_grad()
                loss = self.loss(model)
                loss.backward()
                opt.step()
                if val_rows is None:
                    continue
                v = self.val_loss(model, val_rows)
                history.append({"stage": stage, "epoch": epoch, "train": loss.item(), "val": v})
                if stopper.update(epoch, v, model):
                    break
            if val_rows is None:
                best_epochs.append(n_epochs)
            else:
                stopper.restore(model)
                best_epochs.append(stopper.best_epoch)
        model.eval()
        return model, tuple(best_epochs), history


@dataclass
class FoldFit:
    models: list
    trainers: list
    epochs: list
    val_loss: list
    seconds: float

    @torch.no_grad()
    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Raw-scale predictions (mean over seeds), clipped to the training labels' range."""
        preds = []
        for model, trainer in zip(self.models, self.trainers):
            out = model(*trainer.inputs(rows, train=False))
            z = trainer.point_prediction(out).numpy()
            _, _, y_mean, y_std = trainer.prep.scalers
            preds.append(z * y_std + y_mean)
        low, high = self.trainers[0].y_range
        return np.clip(np.mean(preds, axis=0), low, high)


def fit_fold(data: FusionData, train: np.ndarray, val: np.ndarray, cfg: FusionConfig,
             contrastive: dict, heads_cache: str | None = None) -> FoldFit:
    """Fold model(s) of ``cfg.n_seeds`` seeds: early-stopped on ``val`` rows, then (``refit``)
    retrained on train + val rows for the best epoch counts."""
    start = time.process_time()
    torch.set_num_threads(1)
    models, trainers, epochs, vals = [], [], [], []
    refit = cfg.refit and val.any()
    # the scalers depend on the rows only, not the seed: prepared once per row set
    prep = prepare(data, train, cfg, data.aux)
    refit_rows = train | val
    refit_prep = prepare(data, refit_rows, cfg, data.aux) if refit else None
    for s in range(cfg.n_seeds):
        seed = cfg.seed + s
        trainer = FoldTrainer(data, prep, train, cfg, seed, contrastive, heads_cache)
        model, best, history = trainer.run(val if val.any() else None)
        vals.append(min((h["val"] for h in history), default=float("nan")))
        if refit:
            trainer = FoldTrainer(data, refit_prep, refit_rows, cfg, seed, contrastive, heads_cache)
            model, _, _ = trainer.run(None, epochs=tuple(max(1, e) for e in best))
        models.append(model)
        trainers.append(trainer)
        epochs.append(best)
    return FoldFit(models, trainers, epochs, vals, time.process_time() - start)


# ----------------------------------------------------------------------------- cross-fitting

_SHARED: dict = {}  # set before the worker pool forks: the data is inherited, not pickled


def fold_tasks(splits: pd.DataFrame, split_names, piece_seeds: int | None = None):
    """(split, k, fit rows, val, held_out, test) for every fold model (``fold_plan``); the fit
    rows are the training rows minus the inner validation rows ``val``."""
    from pianoeval.models.protocols import fold_plan

    return [(split, k, train & ~val, val, held_out, test)
            for split, k, train, val, held_out, test in fold_plan(splits, split_names, piece_seeds)]


def _run_task(task):
    split, k, train, val, held_out, test = task
    fit = fit_fold(_SHARED["data"], train, val, _SHARED["cfg"], _SHARED["contrastive"],
                   _SHARED["heads_cache"])
    out = {"held_out": fit.predict(np.flatnonzero(held_out)),
           "test": fit.predict(np.flatnonzero(test)) if test.any() else None,
           "epochs": fit.epochs, "val_loss": fit.val_loss, "cpu_seconds": fit.seconds}
    return split, k, out


def cross_fit_fusion(data: FusionData, splits: pd.DataFrame, cfg: FusionConfig,
                     contrastive: dict, split_names, n_jobs: int = 1,
                     piece_seeds: int | None = None, heads_cache: str | None = None):
    """Predictions per protocol (``<split>_cv``, ``<split>_test``) and a summary per fold
    model. ``splits`` rows are aligned with ``data.segments``; ``heads_cache``: the folder of
    pre-trained heads shared by the variants (:func:`cached_heads`), or None."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import pandas as pd
    from tqdm import tqdm

    from pianoeval.models.protocols import prediction_frame

    if list(splits["segment"]) != list(data.segments):
        raise ValueError("splits rows must be aligned with the data's segments")
    tasks = fold_tasks(splits, split_names, piece_seeds)
    _SHARED.update(data=data, cfg=cfg, contrastive=contrastive, heads_cache=heads_cache)
    if n_jobs > 1:
        with ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("fork")) as pool:
            results = list(tqdm(pool.map(_run_task, tasks), total=len(tasks), desc="fold models"))
    else:
        results = [_run_task(t) for t in tqdm(tasks, desc="fold models")]
    predictions, summary = {}, {}
    for (split, k, out), task in zip(results, tasks):
        held_out, test = task[4], task[5]
        predictions.setdefault(f"{split}_cv", []).append(
            prediction_frame(data.segments[held_out], k, out["held_out"]))
        if out["test"] is not None:
            predictions.setdefault(f"{split}_test", []).append(
                prediction_frame(data.segments[test], k, out["test"]))
        summary[f"{split}_{k}"] = {"epochs": [list(e) for e in out["epochs"]],
                                   "val_loss": [round(v, 6) for v in out["val_loss"]],
                                   "cpu_seconds": out["cpu_seconds"]}
    frames = {}
    for protocol, parts in predictions.items():
        keys = ["segment"] if protocol.endswith("_cv") else ["segment", "fold"]
        frames[protocol] = pd.concat(parts).sort_values(keys, ignore_index=True)
    return frames, summary
