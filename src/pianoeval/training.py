"""What the torch model families share in training: determinism, batches of similar length,
the validation score and early stopping."""
from __future__ import annotations

import copy
import math
import os

import numpy as np
import torch


def set_determinism(seed: int, num_threads: int, device: str = "cpu") -> None:
    """Seed torch, fix the thread count (CPU results can depend on it) and ask for
    deterministic kernels. On CUDA (untested here: no GPU on the build machines) cuBLAS needs a
    workspace setting, and an op without a deterministic kernel warns instead of failing."""
    torch.manual_seed(seed)
    torch.set_num_threads(num_threads)
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device.startswith("cuda"))


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None
                   ) -> list[np.ndarray]:
    """Positions 0..n-1 cut into batches of similar length: shuffle (if rng), sort chunks of
    8 batches by length, cut, shuffle the batch order. Without rng: sorted, in order."""
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    chunk = 8 * batch_size
    batches = []
    for i in range(0, n, chunk):
        part = perm[i:i + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def mean_r2(y: np.ndarray, p: np.ndarray) -> float:
    """R² per dimension, 1 - SS_res / SS_tot over the rows, averaged over the dimensions (NaN
    when a dimension is constant in ``y``): the validation score early stopping logs."""
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    ss_res = ((y - p) ** 2).sum(0)
    return float(np.mean(1 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)))


class EarlyStopping:
    """The weights of the epoch with the lowest validation loss, and when to stop looking.

    The first epoch recorded is kept whatever its loss (a loop may record its starting point,
    e.g. with ``math.inf``); a later one replaces it when ``loss < best - min_delta``. Training
    stops once ``patience`` epochs in a row have not improved.

    Written here rather than taken from lightning or skorch: both own the training loop, and
    these loops are a few lines each (several optimisers, a ridge head refitted between epochs,
    staged unfreezing).
    """

    def __init__(self, patience: int, min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.waited, self._state = math.inf, -1, 0, None

    def update(self, epoch: int, loss: float, model: torch.nn.Module) -> bool:
        """Record ``epoch``'s validation ``loss`` (keeping ``model``'s weights when it improves);
        True when training should stop."""
        if self._state is None or loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.waited = loss, epoch, 0
            self._state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best epoch's weights into ``model``."""
        if self._state is None:
            raise RuntimeError("no epoch was recorded")
        model.load_state_dict(self._state)
