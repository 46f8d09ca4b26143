"""Sequence-model ablations cross-fitted over the evaluation protocols.

An ablation (``train_sequence.models.<name>`` in params.yaml) names feature groups and whether
the pooling is hierarchical; the rest of the configuration is shared. A ``profile`` (e.g. a GPU
profile) overrides shared keys.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.splits import SPLIT_COLUMNS, fold_masks
from pianoeval.models.hierarchical import HierConfig
from pianoeval.models.protocols import cross_fit_protocols
from pianoeval.train.data import NoteData
from pianoeval.train.loop import FoldModel, TrainConfig, fit_fold, predict

log = logging.getLogger(__name__)
FEATURE_GROUPS = ("performance_features", "aligned_features")


def ablation(section: dict, name: str) -> tuple[list[str], HierConfig, TrainConfig]:
    """Feature columns, model and training configuration of ablation ``name``."""
    models = section["models"]
    if name not in models:
        raise KeyError(f"no ablation {name!r} in train_sequence.models (have: {sorted(models)})")
    spec = models[name]
    columns: list[str] = []
    for group in spec["features"]:
        key = f"{group}_features"
        if key not in FEATURE_GROUPS:
            raise KeyError(f"{name}: unknown feature group {group!r} (have: performance, aligned)")
        columns += [c for c in section[key] if c not in columns]
    model_cfg = HierConfig(**{**section["model"], "hierarchical": bool(spec["hierarchical"]),
                              "n_features": len(columns)})
    train_cfg = TrainConfig(**section["train"], seed=section["seed"],
                            num_threads=section["num_threads"], device=section["device"])
    return columns, model_cfg, train_cfg


def all_feature_columns(section: dict) -> list[str]:
    return list(dict.fromkeys(c for g in FEATURE_GROUPS for c in section[g]))


def fit_fold_models(data: NoteData, Y: np.ndarray, split_rows: pd.DataFrame,
                    split_names: Iterable[str], n_folds: int, model_cfg: HierConfig,
                    train_cfg: TrainConfig, n_jobs: int = 1) -> dict[tuple[str, int], FoldModel]:
    """Train fold model k of every split: on the rows ``fold_masks`` marks train, early-stopped
    on fold k. Test rows are never passed. ``n_jobs`` > 1 trains fold models in that many
    worker processes (each with ``train_cfg.num_threads`` threads; same results as n_jobs=1)."""
    jobs = [(split, k, np.flatnonzero(train), np.flatnonzero(held_out))
            for split in split_names
            for k, train, held_out, _ in fold_masks(split_rows[SPLIT_COLUMNS[split]], n_folds)]
    args = [(data, Y, train, held_out, model_cfg, train_cfg) for _, _, train, held_out in jobs]
    fitted = {}
    if n_jobs <= 1:
        for (split, k, _, _), a in zip(jobs, args):
            fitted[(split, k)] = _logged(split, k, fit_fold(*a))
    else:
        with ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(fit_fold, *a): (split, k) for (split, k, _, _), a in zip(jobs, args)}
            for future in as_completed(futures):
                fitted[futures[future]] = _logged(*futures[future], future.result())
    return {(split, k): fitted[(split, k)] for split, k, _, _ in jobs}


def _logged(split: str, k: int, fm: FoldModel) -> FoldModel:
    best = fm.history[fm.best_epoch]
    log.info("%s fold %d: best epoch %d of %d, val loss %.4f, val R2 %.3f, %.0f s (%.0f s CPU)",
             split, k, fm.best_epoch, len(fm.history), best["val_loss"], best["val_r2"],
             fm.seconds, fm.cpu_seconds)
    return fm


def cross_fit_sequence(notes: NoteData, labels: pd.DataFrame, splits: pd.DataFrame,
                       columns: list[str], model_cfg: HierConfig, train_cfg: TrainConfig,
                       split_names: Iterable[str], n_folds: int = 4, n_jobs: int = 1,
                       ) -> tuple[dict[str, pd.DataFrame], dict[str, FoldModel]]:
    """Fold models of every split in ``split_names``; predictions per protocol.

    Segments are those with labels, a split row and notes. Fold model k trains on the rows
    ``fold_masks`` marks train and early-stops on fold k; the test rows are only predicted.
    """
    segments = sorted(set(labels["segment"]) & set(splits["segment"]) & set(notes.segments))
    if not segments:
        raise ValueError("no segment has labels, a split and notes")
    data = notes.select(segments).subset_columns(columns)
    Y = labels.set_index("segment").loc[segments, list(DIMENSIONS)].to_numpy(float)
    split_rows = splits.set_index("segment").loc[segments].reset_index()
    split_names = list(split_names)
    fitted = fit_fold_models(data, Y, split_rows, split_names, n_folds, model_cfg, train_cfg, n_jobs)

    def fit(split: str, k: int, train: np.ndarray, held_out: np.ndarray) -> FoldModel:
        fm = fitted[(split, k)]
        assert np.array_equal(fm.train_index, np.flatnonzero(train))
        assert np.array_equal(fm.val_index, np.flatnonzero(held_out))
        return fm

    def pred(fm: FoldModel, mask: np.ndarray) -> np.ndarray:
        return predict(fm, data, np.flatnonzero(mask), train_cfg.batch_size, train_cfg.device)

    return cross_fit_protocols(np.asarray(segments), split_rows, fit, pred, n_folds, split_names)
