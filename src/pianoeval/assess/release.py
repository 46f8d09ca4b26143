"""The release model: what `pianoeval assess` loads, fitted by the `release` stage.

One ridge per variant (``with_score``: every feature; ``performance_only``: the features a
performance alone defines), fitted on every labelled segment and exported as plain numbers
(imputer medians, scaler, coefficients, clip range) so that the file in git reads the same
under any sklearn version and prediction is one matrix product.

Per-performance intervals are split-conformal (Vovk et al. 2005; Lei et al. 2018): with the
absolute out-of-fold residuals ``|y_i - f_{-fold(i)}(x_i)|`` of n calibration rows, the
half-width at coverage ``1 - a`` is their ``ceil((n + 1)(1 - a))``-th smallest value. The folds
are whole works (``work_split``), because a user's music is almost never PercePiano's: the
residuals are those of unseen music. Coverage is checked out of fold, one work at a time.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.models.baselines import make_baseline

QUANTILE_GRID = np.linspace(0.0, 1.0, 201)


@dataclass
class LinearModel:
    """A fitted ridge in numbers: ``clip(((impute(x) - mean) / scale) @ coef.T + intercept)``."""

    features: list[str]
    median: list[float]
    mean: list[float]
    scale: list[float]
    coef: list[list[float]]  # dimensions x features
    intercept: list[float]
    alpha: list[float]
    low: list[float]
    high: list[float]

    @classmethod
    def from_sklearn(cls, estimator, features: list[str]) -> "LinearModel":
        """From ``make_baseline("ridge", ...)`` fitted (clipped or not)."""
        pipeline = getattr(estimator, "estimator_", estimator)
        imputer, scaler, ridge = (step for _, step in pipeline.steps)
        inf = [math.inf] * len(DIMENSIONS)
        return cls(features=list(features), median=imputer.statistics_.tolist(),
                   mean=scaler.mean_.tolist(), scale=scaler.scale_.tolist(),
                   coef=ridge.coef_.tolist(), intercept=ridge.intercept_.tolist(),
                   alpha=np.broadcast_to(ridge.alpha_, len(DIMENSIONS)).tolist(),
                   low=getattr(estimator, "low_", -np.array(inf)).tolist(),
                   high=getattr(estimator, "high_", np.array(inf)).tolist())

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (rows x 19) for ``X`` (rows x features, NaN allowed)."""
        X = np.atleast_2d(np.asarray(X, float))
        if X.shape[1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} features, got {X.shape[1]}")
        X = np.where(np.isnan(X), np.asarray(self.median), X)
        Z = (X - np.asarray(self.mean)) / np.asarray(self.scale)
        Y = Z @ np.asarray(self.coef).T + np.asarray(self.intercept)
        return np.clip(Y, self.low, self.high)


def conformal_halfwidth(abs_residuals: np.ndarray, coverage: float) -> np.ndarray:
    """Per column, the ``ceil((n + 1) * coverage)``-th smallest absolute residual (inf when that
    rank exceeds n: too few rows for the coverage asked)."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie in (0, 1), got {coverage}")
    r = np.sort(np.atleast_2d(np.asarray(abs_residuals, float).T).T, axis=0)
    n = r.shape[0]
    rank = math.ceil((n + 1) * coverage)
    return np.full(r.shape[1], np.inf) if rank > n else r[rank - 1]


def out_of_fold(X: np.ndarray, Y: np.ndarray, folds: np.ndarray, config: dict) -> np.ndarray:
    """Predictions of every row by the ridge fitted on the other folds' rows."""
    pred = np.full(Y.shape, np.nan)
    for fold in np.unique(folds):
        held = folds == fold
        model = make_baseline("ridge", config).fit(X[~held], Y[~held])
        pred[held] = model.predict(X[held])
    return pred


def coverage_by_fold(abs_residuals: np.ndarray, folds: np.ndarray, coverage: float
                     ) -> dict[str, list[float]]:
    """Fold -> per-dimension share of its rows inside the interval calibrated on the others."""
    out = {}
    for fold in np.unique(folds):
        held = folds == fold
        width = conformal_halfwidth(abs_residuals[~held], coverage)
        out[str(fold)] = (abs_residuals[held] <= width).mean(axis=0).tolist()
    return out


@dataclass
class ReleaseVariant:
    """Everything assess needs for one variant (written as JSON by the release stage)."""

    variant: str
    model: LinearModel
    coverage: float
    halfwidth: list[float]  # per dimension
    coverage_out_of_fold: dict[str, list[float]]  # work fold -> per dimension
    prediction_quantiles: list[list[float]]  # QUANTILE_GRID x dimensions, PercePiano in-sample
    n_train: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, allow_nan=False) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> "ReleaseVariant":
        data = json.loads(Path(path).read_text())
        data["model"] = LinearModel(**data["model"])
        return cls(**data)

    def outlying_features(self, features: dict[str, float], z: float) -> list[str]:
        """The model's features more than ``z`` training standard deviations from the mean."""
        return [name for name, mean, scale in zip(self.model.features, self.model.mean,
                                                  self.model.scale)
                if abs((features.get(name, math.nan) - mean) / scale) > z]

    def predict(self, features: dict[str, float]) -> list[dict]:
        """Per dimension: score, conformal interval (clipped to 0..1) and percentile (0..100)
        among the model's predictions for PercePiano's performances."""
        x = np.array([[features.get(c, math.nan) for c in self.model.features]], float)
        y = self.model.predict(x)[0]
        q = np.asarray(self.prediction_quantiles)
        out = []
        for j, name in enumerate(DIMENSIONS):
            lo, hi = y[j] - self.halfwidth[j], y[j] + self.halfwidth[j]
            percentile = 100.0 * float(np.interp(y[j], q[:, j], QUANTILE_GRID))
            out.append({"name": name, "score": float(y[j]),
                        "interval": [float(max(lo, 0.0)), float(min(hi, 1.0))],
                        "percentile": percentile})
        return out


def fit_variant(variant: str, data: pd.DataFrame, cols: list[str], folds: np.ndarray,
                ridge_config: dict, coverage: float) -> ReleaseVariant:
    """Fit one variant's ridge on every row of ``data`` (columns ``cols`` + the 19 labels);
    calibrate its intervals on out-of-fold residuals over ``folds`` (one value per row)."""
    X = data[cols].to_numpy(float)
    Y = data[list(DIMENSIONS)].to_numpy(float)
    abs_res = np.abs(Y - out_of_fold(X, Y, np.asarray(folds), ridge_config))
    estimator = make_baseline("ridge", ridge_config).fit(X, Y)
    model = LinearModel.from_sklearn(estimator, cols)
    fitted = model.predict(X)
    return ReleaseVariant(
        variant=variant, model=model, coverage=coverage,
        halfwidth=conformal_halfwidth(abs_res, coverage).tolist(),
        coverage_out_of_fold=coverage_by_fold(abs_res, np.asarray(folds), coverage),
        prediction_quantiles=np.quantile(fitted, QUANTILE_GRID, axis=0).tolist(),
        n_train=len(data))
