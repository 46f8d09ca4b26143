"""Sequence-model ablations cross-fitted over the evaluation protocols.

An ablation (``train_sequence.models.<name>`` in params.yaml) names feature groups and whether
the pooling is hierarchical; the rest of the configuration is shared. A ``profile`` (e.g. a GPU
profile) overrides shared keys.
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.models.protocols import cross_fit_protocols, fold_plan
from pianoeval.progress import Progress
from pianoeval.sequence.data import NoteData, load_notes
from pianoeval.sequence.model import HierarchicalAttentionModel, HierConfig, n_parameters
from pianoeval.sequence.train import FoldModel, TrainConfig, fit_fold, predict

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
                    split_names: Iterable[str], model_cfg: HierConfig, train_cfg: TrainConfig,
                    n_jobs: int = 1, piece_seeds: int | None = None,
                    name: str = "train_sequence") -> dict[tuple[str, int], FoldModel]:
    """Train fold model k of every split on its training rows minus an inner validation fold
    (``fold_plan``), early-stopped on that inner fold: fold k and the test rows are never
    passed. ``n_jobs`` > 1 trains fold models in that many worker processes (each with
    ``train_cfg.num_threads`` threads; same results as n_jobs=1). Progress (``name``) counts
    the fold models as they finish."""
    jobs = [(split, k, np.flatnonzero(train & ~val), np.flatnonzero(val))
            for split, k, train, val, _, _ in fold_plan(split_rows, split_names, piece_seeds)]
    args = [(data, Y, train, val, model_cfg, train_cfg) for _, _, train, val in jobs]
    fitted = {}
    with Progress(name, len(jobs), "fold models") as progress:
        if n_jobs <= 1:
            for (split, k, _, _), a in zip(jobs, args):
                fitted[(split, k)] = _logged(split, k, fit_fold(*a))
                progress.update()
        else:
            with ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(fit_fold, *a): (split, k)
                           for (split, k, _, _), a in zip(jobs, args)}
                for future in as_completed(futures):
                    fitted[futures[future]] = _logged(*futures[future], future.result())
                    progress.update()
    return {(split, k): fitted[(split, k)] for split, k, _, _ in jobs}


def _logged(split: str, k: int, fm: FoldModel) -> FoldModel:
    best = fm.history[fm.best_epoch]
    log.info("%s fold %d: best epoch %d of %d, val loss %.4f, val R2 %.3f, %.0f s (%.0f s CPU)",
             split, k, fm.best_epoch, len(fm.history), best["val_loss"], best["val_r2"],
             fm.seconds, fm.cpu_seconds)
    return fm


def cross_fit_sequence(notes: NoteData, labels: pd.DataFrame, splits: pd.DataFrame,
                       columns: list[str], model_cfg: HierConfig, train_cfg: TrainConfig,
                       split_names: Iterable[str], n_jobs: int = 1,
                       piece_seeds: int | None = None, name: str = "train_sequence",
                       ) -> tuple[dict[str, pd.DataFrame], dict[str, FoldModel]]:
    """Fold models of every split in ``split_names``; predictions per protocol.

    Segments are those with labels, a split row and notes. Fold model k trains on its training
    rows minus an inner validation fold and early-stops there; fold k and the test rows are
    only predicted.
    """
    segments = sorted(set(labels["segment"]) & set(splits["segment"]) & set(notes.segments))
    if not segments:
        raise ValueError("no segment has labels, a split and notes")
    data = notes.select(segments).subset_columns(columns)
    Y = labels.set_index("segment").loc[segments, list(DIMENSIONS)].to_numpy(float)
    split_rows = splits.set_index("segment").loc[segments].reset_index()
    split_names = list(split_names)
    fitted = fit_fold_models(data, Y, split_rows, split_names, model_cfg, train_cfg, n_jobs,
                             piece_seeds, name)

    def fit(split: str, k: int, train: np.ndarray, val: np.ndarray) -> FoldModel:
        fm = fitted[(split, k)]
        assert np.array_equal(fm.train_index, np.flatnonzero(train & ~val))
        assert np.array_equal(fm.val_index, np.flatnonzero(val))
        return fm

    def pred(fm: FoldModel, mask: np.ndarray) -> np.ndarray:
        return predict(fm, data, np.flatnonzero(mask), train_cfg.batch_size, train_cfg.device)

    return cross_fit_protocols(np.asarray(segments), split_rows, fit, pred, split_names, piece_seeds)


def unnoted_segments(labels: pd.DataFrame, notes: NoteData) -> list[str]:
    """Labelled segments without notes (sorted): they are left out of every fold."""
    return sorted(set(labels["segment"]) - set(notes.segments))


def sequence_notes(notes: pd.DataFrame, labels: pd.DataFrame, section: dict) -> NoteData:
    """The align stage's notes with every ablation's feature columns; warns about labelled
    segments without notes."""
    data = load_notes(notes, all_feature_columns(section))
    if missing := unnoted_segments(labels, data):
        log.warning("%d labelled segments have no notes and are left out, e.g. %s",
                    len(missing), missing[:3])
    return data


def describe_ablation(name: str, columns: list[str], model_cfg: HierConfig,
                      split_names: Iterable[str]) -> str:
    """One log line naming what ablation ``name`` trains."""
    return (f"{name}: {len(columns)} features {columns}, hierarchical={model_cfg.hierarchical}, "
            f"{n_parameters(HierarchicalAttentionModel(model_cfg))} parameters, "
            f"splits {split_names}")


def train_ablation(section: dict, name: str, notes: NoteData, labels: pd.DataFrame,
                   splits: pd.DataFrame
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, FoldModel], dict]:
    """Ablation ``name`` of the resolved ``train_sequence`` section cross-fitted over its
    splits (:func:`cross_fit_sequence`): predictions per protocol, fold models by name and the
    training summary (:func:`training_summary`)."""
    columns, model_cfg, train_cfg = ablation(section, name)
    log.info(describe_ablation(name, columns, model_cfg, section["splits"]))
    start = time.perf_counter()
    predictions, models = cross_fit_sequence(notes, labels, splits, columns, model_cfg, train_cfg,
                                             section["splits"], n_jobs=section["n_jobs"],
                                             piece_seeds=section["piece_seeds"],
                                             name=f"train_sequence@{name}")
    # Timings only go to the log: the summary is tracked by git.
    log.info("%s: %d fold models in %.0f s (%.0f s CPU in fold training); protocols %s", name,
             len(models), time.perf_counter() - start,
             sum(fm.cpu_seconds for fm in models.values()), sorted(predictions))
    return predictions, models, training_summary(columns, model_cfg, models)


def history_jsonl(models: dict[str, FoldModel]) -> str:
    """Every fold model's per-epoch losses as JSON lines, fold by fold, each led by its
    ``fold``."""
    return "".join(json.dumps({"fold": fold, **_rounded(record)}) + "\n"
                   for fold, fm in models.items() for record in fm.history)


def training_summary(columns: list[str], model_cfg: HierConfig,
                     models: dict[str, FoldModel]) -> dict:
    """Features, pooling and each fold model's best epoch with its losses. No timings: the
    summary is tracked by git and must stay identical when a rerun reproduces the models."""
    return {"features": columns, "hierarchical": model_cfg.hierarchical,
            "folds": {fold: {"best_epoch": fm.best_epoch, "epochs": len(fm.history),
                             **_rounded(fm.history[fm.best_epoch], skip="epoch")}
                      for fold, fm in models.items()}}


def _rounded(record: dict, skip: str | None = None) -> dict:
    # 6 decimals, like the prediction CSVs (float_format="%.6f").
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items() if k != skip}
