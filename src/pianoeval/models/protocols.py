"""Predictions per evaluation protocol, shared by every model family (baselines, sequence models).

A model family supplies ``fit(split, k, train, held_out)`` and ``predict(model, mask)``; this
module loops over the splits and their fold models (``fold_masks``) and assembles the prediction
tables that the evaluate stage reads: ``<split>_cv`` (out-of-fold, one row per segment) and
``<split>_test`` (the fixed test set, one row per segment and fold model).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.splits import SPLIT_COLUMNS, fold_masks


def prediction_frame(segments: np.ndarray, fold: int, pred: np.ndarray) -> pd.DataFrame:
    """Columns ``segment``, ``fold``, then the 19 dimensions."""
    frame = pd.DataFrame(pred, columns=list(DIMENSIONS))
    frame.insert(0, "fold", fold)
    frame.insert(0, "segment", segments)
    return frame


def cross_fit_protocols(segments: np.ndarray, splits: pd.DataFrame,
                        fit: Callable[[str, int, np.ndarray, np.ndarray], object],
                        predict: Callable[[object, np.ndarray], np.ndarray],
                        n_folds: int = 4, split_names: Iterable[str] = tuple(SPLIT_COLUMNS),
                        ) -> tuple[dict[str, pd.DataFrame], dict]:
    """Fit fold model k of every split and collect its predictions per protocol.

    ``segments`` (n,) and ``splits`` (n rows, the split columns) are aligned row by row.
    ``fit(split_name, k, train_mask, held_out_mask)`` returns a fitted model: it must train on
    ``train_mask`` only and may use ``held_out_mask`` (fold k) for early stopping; the test rows
    are never passed to it. ``predict(model, mask)`` returns (mask.sum(), 19) predictions.
    Returns ``({protocol: frame}, {"<split>_<k>": model})``.
    """
    segments = np.asarray(segments)
    if len(segments) != len(splits):
        raise ValueError(f"{len(segments)} segments but {len(splits)} split rows")
    predictions, models = {}, {}
    for split_name in split_names:
        column = SPLIT_COLUMNS[split_name]
        cv_parts, test_parts = [], []
        for k, train, held_out, test in fold_masks(splits[column], n_folds):
            model = fit(split_name, k, train, held_out)
            models[f"{split_name}_{k}"] = model
            cv_parts.append(prediction_frame(segments[held_out], k, predict(model, held_out)))
            if test.any():
                test_parts.append(prediction_frame(segments[test], k, predict(model, test)))
        predictions[f"{split_name}_cv"] = pd.concat(cv_parts).sort_values("segment", ignore_index=True)
        if test_parts:
            predictions[f"{split_name}_test"] = pd.concat(test_parts).sort_values(
                ["segment", "fold"], ignore_index=True)
    return predictions, models
