"""Training loop of one fold model: plain PyTorch, seeded, deterministic on CPU.

* Targets are standardised per dimension with the training rows' mean and sd, so the MSE loss
  is the mean over dimensions of MSE_j / Var_j, i.e. ``1 - mean R^2`` on the training scale:
  every dimension counts as the evaluation counts it. Nothing else is added to the loss.
* AdamW, gradient-norm clipping, mini-batches of similar length (less padding), shuffled by a
  seeded generator.
* Early stopping and the choice of epoch use the validation rows only (fold k, PercePiano's
  protocol); the weights of the best validation epoch are kept. The caller never passes the
  test rows here.
* Predictions are mapped back to the 0..1 scale and clipped to the training labels' range per
  dimension, like the ridge baseline.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from pianoeval.sequence.data import NoteData, Standardiser, collate
from pianoeval.sequence.model import HierarchicalAttentionModel, HierConfig
from pianoeval.training import EarlyStopping, length_batches, mean_r2, set_determinism


@dataclass
class TrainConfig:
    """Optimisation settings: train_sequence.train of params.yaml, with the stage's seed, threads
    and device; no defaults here (params.yaml is their home)."""
    batch_size: int
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int  # stop after this many epochs without a better validation loss
    grad_clip: float  # max gradient norm
    feature_clip: float  # z-scores of input features clipped to +-this
    seed: int
    num_threads: int
    device: str


@dataclass
class FoldModel:
    """A fitted fold model with everything needed to predict from raw notes."""

    model: HierarchicalAttentionModel
    scaler: Standardiser
    y_mean: np.ndarray
    y_std: np.ndarray
    y_low: np.ndarray
    y_high: np.ndarray
    columns: list[str]
    best_epoch: int
    history: list[dict] = field(default_factory=list)  # per epoch: losses and validation R^2
    train_index: np.ndarray | None = None   # rows of the NoteData it was trained on
    val_index: np.ndarray | None = None     # rows used for early stopping
    seconds: float = 0.0                    # wall-clock training time
    cpu_seconds: float = 0.0                # CPU time of the training process (all threads)

    def checkpoint(self) -> dict:
        return {"state_dict": self.model.state_dict(), "model_config": asdict(self.model.cfg),
                "columns": self.columns, "scaler": self.scaler.state(),
                "y_mean": self.y_mean.tolist(), "y_std": self.y_std.tolist(),
                "y_low": self.y_low.tolist(), "y_high": self.y_high.tolist(),
                "best_epoch": self.best_epoch, "history": self.history}


def _batch(xs, data: NoteData, idx: np.ndarray, device: str):
    b = collate([xs[i] for i in idx], [data.beat[i] for i in idx], [data.bar[i] for i in idx])
    return type(b)(*(t.to(device) for t in (b.x, b.mask, b.beat, b.bar)))


@torch.no_grad()
def _predict_std(model, xs, data: NoteData, idx: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """Standardised-scale predictions for rows ``idx`` (in that order)."""
    model.eval()
    out = np.zeros((len(idx), model.cfg.n_outputs), np.float32)
    for part in length_batches(np.array([len(xs[i]) for i in idx]), 4 * batch_size, None):
        out[part] = model(_batch(xs, data, idx[part], device)).cpu().numpy()
    return out


def fit_fold(data: NoteData, Y: np.ndarray, train_idx, val_idx, model_cfg: HierConfig,
             cfg: TrainConfig, on_epoch: Callable[[dict], None] | None = None) -> FoldModel:
    """Train on rows ``train_idx`` of ``data``/``Y``; early-stop on rows ``val_idx``."""
    train_idx, val_idx = np.asarray(train_idx), np.asarray(val_idx)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"need training and validation rows, got {len(train_idx)} and {len(val_idx)}")
    if np.intersect1d(train_idx, val_idx).size:
        raise ValueError("training and validation rows overlap")
    start, cpu_start = time.perf_counter(), time.process_time()
    set_determinism(cfg.seed, cfg.num_threads, cfg.device)
    rng = np.random.default_rng(cfg.seed)

    scaler = Standardiser.fit([data.features[i] for i in train_idx], cfg.feature_clip)
    xs = {i: scaler.transform(data.features[i]) for i in np.concatenate([train_idx, val_idx])}
    y_train = Y[train_idx]
    y_mean, y_std = y_train.mean(0), y_train.std(0)
    y_std = np.where(y_std > 1e-8, y_std, 1.0)
    z_train = torch.tensor((y_train - y_mean) / y_std, dtype=torch.float32)
    z_val = (Y[val_idx] - y_mean) / y_std

    model_cfg = replace(model_cfg, n_features=len(data.columns))
    model = HierarchicalAttentionModel(model_cfg).to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lengths = data.lengths(train_idx)

    stopper, history = EarlyStopping(cfg.patience), []
    for epoch in range(cfg.max_epochs):
        model.train()
        total, count = 0.0, 0
        for part in length_batches(lengths, cfg.batch_size, rng):
            pred = model(_batch(xs, data, train_idx[part], cfg.device))
            loss = torch.mean((pred - z_train[part].to(cfg.device)) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += loss.item() * len(part)
            count += len(part)
        val_pred = _predict_std(model, xs, data, val_idx, cfg.batch_size, cfg.device)
        val_loss = float(np.mean((val_pred - z_val) ** 2))
        record = {"epoch": epoch, "train_loss": total / count, "val_loss": val_loss,
                  "val_r2": mean_r2(Y[val_idx], val_pred * y_std + y_mean)}
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if stopper.update(epoch, val_loss, model):
            break
    stopper.restore(model)
    model.eval()
    return FoldModel(model, scaler, y_mean, y_std, y_train.min(0), y_train.max(0),
                     list(data.columns), stopper.best_epoch, history, train_idx, val_idx,
                     time.perf_counter() - start, time.process_time() - cpu_start)


def predict(fm: FoldModel, data: NoteData, idx, batch_size: int = 16, device: str = "cpu"
            ) -> np.ndarray:
    """(len(idx), 19) predictions on the 0..1 label scale, clipped to the training range."""
    idx = np.asarray(idx)
    if list(data.columns) != fm.columns:
        raise ValueError(f"model expects features {fm.columns}, got {data.columns}")
    xs = {i: fm.scaler.transform(data.features[i]) for i in idx}
    z = _predict_std(fm.model, xs, data, idx, batch_size, device)
    return np.clip(z * fm.y_std + fm.y_mean, fm.y_low, fm.y_high)
