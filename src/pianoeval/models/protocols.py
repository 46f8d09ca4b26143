"""Predictions per evaluation protocol, shared by every model family (baselines, sequence models).

A model family supplies ``fit(split, k, train, val)`` and ``predict(model, mask)``; this
module loops over the splits and their fold models (``fold_masks``) and assembles the prediction
tables that the evaluate stage reads: ``<split>_cv`` (out-of-fold, one row per segment) and
``<split>_test`` (the fixed test set, one row per segment and fold model), with ``piece_s<seed>``
for each seed of the repeated piece split.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.splits import fold_masks, inner_validation, split_columns


def prediction_frame(segments: np.ndarray, fold: int, pred: np.ndarray) -> pd.DataFrame:
    """Columns ``segment``, ``fold``, then the 19 dimensions."""
    frame = pd.DataFrame(pred, columns=list(DIMENSIONS))
    frame.insert(0, "fold", fold)
    frame.insert(0, "segment", segments)
    return frame


def fold_plan(splits: pd.DataFrame, split_names: Iterable[str], piece_seeds: int | None = None
              ) -> list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(split_name, k, train, val, held_out, test)`` masks of every fold model, in the order
    ``cross_fit_protocols`` fits them. ``val`` (``inner_validation``) lies inside ``train``: a
    model that early-stops fits on ``train & ~val`` and watches ``val``."""
    plan = []
    for split_name, column in split_columns(splits, split_names, piece_seeds).items():
        for k, train, held_out, test in fold_masks(splits[column]):
            plan.append((split_name, k, train, inner_validation(splits[column], k, train),
                         held_out, test))
    return plan


def cross_fit_protocols(segments: np.ndarray, splits: pd.DataFrame,
                        fit: Callable[[str, int, np.ndarray, np.ndarray], object],
                        predict: Callable[[object, np.ndarray], np.ndarray],
                        split_names: Iterable[str] = ("piece", "performer", "work", "lopo"),
                        piece_seeds: int | None = None,
                        ) -> tuple[dict[str, pd.DataFrame], dict]:
    """Fit fold model k of every split and collect its predictions per protocol.

    ``segments`` (n,) and ``splits`` (n rows, the split columns of data/splits.csv) are aligned
    row by row. ``split_names`` go through ``split_columns``: ``"piece"`` means every seed of the
    piece split (``piece_s<seed>``; the first ``piece_seeds`` only, if given).
    ``fit(split_name, k, train_mask, val_mask)`` returns a fitted model: it trains on
    ``train_mask`` only; ``val_mask`` (a subset of ``train_mask``: another fold's training rows,
    ``inner_validation``) is what it may hold out for early stopping or any other choice, so the
    fold that is then scored (k) and the test rows never influence it.
    ``predict(model, mask)`` returns (mask.sum(), 19) predictions.
    Returns ``({protocol: frame}, {"<split>_<k>": model})``.
    """
    segments = np.asarray(segments)
    if len(segments) != len(splits):
        raise ValueError(f"{len(segments)} segments but {len(splits)} split rows")
    parts: dict[str, list] = {}
    models = {}
    for split_name, k, train, val, held_out, test in fold_plan(splits, split_names, piece_seeds):
        model = fit(split_name, k, train, val)
        models[f"{split_name}_{k}"] = model
        parts.setdefault(f"{split_name}_cv", []).append(
            prediction_frame(segments[held_out], k, predict(model, held_out)))
        if test.any():
            parts.setdefault(f"{split_name}_test", []).append(
                prediction_frame(segments[test], k, predict(model, test)))
    predictions = {protocol: pd.concat(frames).sort_values(
        "segment" if protocol.endswith("_cv") else ["segment", "fold"], ignore_index=True)
        for protocol, frames in parts.items()}
    return predictions, models
