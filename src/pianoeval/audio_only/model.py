"""Audio-only models on pooled audio embeddings: ridge (the baseline's own estimator) and a
small MLP head; plus the cross-soundfont check.

Ridge is ``make_baseline("ridge", ...)`` run through ``cross_fit`` with the embedding table as
the feature table. The MLP runs through the same protocol loop (``cross_fit_protocols``).

MLP: torch rather than sklearn's ``MLPRegressor``, because MLPRegressor's early stopping holds
out a *random* 10 % of the training rows, which puts performances of the same passage (piece
split) or the same performer (performer split) on both sides; here early stopping watches a
whole validation fold of the protocol instead. Fold model k of a split trains on its training
rows minus the next fold's (``inner_validation``), stops where the loss there is lowest,
then (``refit``) is retrained on all its training rows for that many epochs. Fold k itself and
the test set never influence any choice.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.models.baselines import cross_fit
from pianoeval.models.protocols import cross_fit_protocols

log = logging.getLogger(__name__)

def standardize_per_domain(table: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Z-score every feature within one domain's table (e.g. one soundfont's renders), over
    all its segments: unsupervised (no label is read), it removes a soundfont's fixed timbre
    offsets before a model trained on another soundfont sees the features."""
    out = table.copy()
    values = out[cols].to_numpy(float)
    out[cols] = (values - values.mean(0)) / (values.std(0) + 1e-9)
    return out


# ----------------------------------------------------------------------------- MLP head

class MLPHead(RegressorMixin, BaseEstimator):
    """Median imputation, standardisation, Linear-GELU-Dropout-Linear on standardised targets,
    AdamW, MSE; early stopping on a given validation set (``fit(X, Y, X_val, Y_val)``). The
    settings are train_audio.mlp of params.yaml (no defaults here): ``patience`` epochs without
    a better validation loss stop a net; ``refit`` retrains on every training row for the best
    epoch count; ``n_seeds`` seeded nets are averaged."""

    def __init__(self, hidden, dropout, weight_decay, lr, batch_size, max_epochs, patience, refit,
                 n_seeds, seed, clip_to_training_range):
        self.hidden, self.dropout, self.weight_decay, self.lr = hidden, dropout, weight_decay, lr
        self.batch_size, self.max_epochs, self.patience = batch_size, max_epochs, patience
        self.refit, self.n_seeds, self.seed = refit, n_seeds, seed
        self.clip_to_training_range = clip_to_training_range

    def _net(self, d_in, d_out, seed):
        import torch

        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(d_in, self.hidden), torch.nn.GELU(),
                                   torch.nn.Dropout(self.dropout),
                                   torch.nn.Linear(self.hidden, d_out))

    def _train(self, X, Y, seed, epochs, X_val=None, Y_val=None):
        """Train for ``epochs`` (or until ``patience`` runs out on the validation set); return
        the net at its best validation epoch (or the last), and that epoch count."""
        import torch

        from pianoeval.training import EarlyStopping

        g = torch.Generator().manual_seed(seed)
        net = self._net(X.shape[1], Y.shape[1], seed)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        Xt, Yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
        if X_val is not None:
            Xv = torch.as_tensor(X_val, dtype=torch.float32)
            Yv = torch.as_tensor(Y_val, dtype=torch.float32)
        stopper = EarlyStopping(self.patience, min_delta=1e-6) if X_val is not None else None
        for epoch in range(1, epochs + 1):
            net.train()
            for idx in torch.randperm(len(Xt), generator=g).split(self.batch_size):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(net(Xt[idx]), Yt[idx])
                loss.backward()
                opt.step()
            if X_val is None:
                continue
            net.eval()
            with torch.no_grad():
                val = torch.nn.functional.mse_loss(net(Xv), Yv).item()
            if stopper.update(epoch, val, net):
                break
        if stopper is None:
            net.eval()
            return net, epochs
        stopper.restore(net)
        net.eval()
        return net, stopper.best_epoch

    def fit(self, X, Y, X_val=None, Y_val=None):
        import torch

        torch.set_num_threads(1)  # a small net: threads cost more than they give
        X, Y = np.asarray(X, float), np.asarray(Y, float)
        if X_val is not None and self.refit:
            X_all, Y_all = np.vstack([X, X_val]), np.vstack([Y, Y_val])
        else:
            X_all, Y_all = X, Y
        self.imputer_ = SimpleImputer(strategy="median").fit(X)
        self.scaler_ = StandardScaler().fit(self.imputer_.transform(X))
        self.y_mean_, self.y_std_ = Y.mean(0), Y.std(0) + 1e-8
        prep = lambda A: self.scaler_.transform(self.imputer_.transform(A))
        ys = lambda B: (B - self.y_mean_) / self.y_std_
        self.nets_, self.epochs_ = [], []
        for i in range(int(self.n_seeds)):
            seed = int(self.seed) + i
            if X_val is None:
                net, epoch = self._train(prep(X), ys(Y), seed, self.max_epochs)
            else:
                net, epoch = self._train(prep(X), ys(Y), seed, self.max_epochs,
                                         prep(X_val), ys(Y_val))
            self.nets_.append(net)
            self.epochs_.append(epoch)
        if X_val is not None and self.refit:  # same epochs, all training rows, fresh scalers
            self.imputer_ = SimpleImputer(strategy="median").fit(X_all)
            self.scaler_ = StandardScaler().fit(self.imputer_.transform(X_all))
            self.y_mean_, self.y_std_ = Y_all.mean(0), Y_all.std(0) + 1e-8
            self.nets_ = [self._train(prep(X_all), ys(Y_all), int(self.seed) + i, epoch)[0]
                          for i, epoch in enumerate(self.epochs_)]
        self.low_, self.high_ = Y_all.min(0), Y_all.max(0)
        return self

    def predict(self, X):
        import torch

        Xt = torch.as_tensor(self.scaler_.transform(self.imputer_.transform(np.asarray(X, float))),
                             dtype=torch.float32)
        with torch.no_grad():
            pred = np.mean([net(Xt).numpy() for net in self.nets_], axis=0)
        pred = pred * self.y_std_ + self.y_mean_
        if self.clip_to_training_range:
            pred = np.clip(pred, self.low_, self.high_)
        return pred


# ----------------------------------------------------------------------------- cross-fitting

def _merged(data: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    return data.merge(splits, on="segment", validate="one_to_one")


def cross_fit_audio(model: str, config: dict, data: pd.DataFrame, feature_cols: list[str],
                    splits: pd.DataFrame, split_names: tuple[str, ...],
                    predict_data: pd.DataFrame | None = None, piece_seeds: int | None = None,
                    ) -> tuple[dict[str, pd.DataFrame], dict]:
    """Predictions per protocol of ``model`` ("ridge" or "mlp") trained on ``data``.

    ``predict_data`` (same segments, same feature columns; e.g. another soundfont's renders)
    is what the fold models predict; by default ``data`` itself. ``split_names``: the splits
    to fit (``piece``: its first ``piece_seeds`` seeds, all if None).
    """
    if model == "ridge" and predict_data is None and piece_seeds is None:
        return cross_fit("ridge", config, data, feature_cols, splits, split_names)
    merged = _merged(data, splits)
    X = merged[feature_cols].to_numpy(float)
    Y = merged[list(DIMENSIONS)].to_numpy(float)
    if predict_data is None:
        Xp = X
    else:
        other = merged[["segment"]].merge(predict_data, on="segment", how="left")
        if other[feature_cols].isna().all(axis=1).any():
            missing = other.loc[other[feature_cols].isna().all(axis=1), "segment"].tolist()
            raise ValueError(f"predict_data lacks {len(missing)} segments, e.g. {missing[:3]}")
        Xp = other[feature_cols].to_numpy(float)

    if model == "ridge":
        from pianoeval.models.baselines import make_baseline

        def fit(split, k, train, val):
            return make_baseline("ridge", config).fit(X[train], Y[train])
    elif model == "mlp":
        params = config["mlp"]

        def fit(split, k, train, val):
            return MLPHead(**params).fit(X[train & ~val], Y[train & ~val], X[val], Y[val])
    else:
        raise ValueError(f"unknown audio model {model!r} (have: ridge, mlp)")
    return cross_fit_protocols(merged["segment"].to_numpy(), merged, fit=fit,
                               predict=lambda m, mask: m.predict(Xp[mask]),
                               split_names=split_names, piece_seeds=piece_seeds)
