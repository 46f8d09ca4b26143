"""Fine-tuning the MIDI encoder on the PercePiano labels, one model per fold of every split.

The same recipe as the sequence models (``pianoeval.sequence.train``): targets standardised per
dimension on the training rows (MSE = 1 - mean R^2 on the training scale), AdamW with gradient
clipping, batches of similar length, early stopping and the choice of epoch on the validation
fold only (the test rows are never passed in), predictions mapped back to 0..1 and clipped to
the training labels' range. Specific to the Transformer: two learning rates (encoder, head), a
linear warm-up over ``warmup_frac`` of the steps then linear decay to 0,
  lr(s) = lr_max * min(s / w, (S - s) / (S - w)),  w = warmup_frac * S,  S = total steps,
segments longer than the encoder's ``max_len`` tokens are cut to their first ``max_len``, and
(CPU budget) each training step may see a random window of ``train_crop`` tokens of a longer
segment, a crop of the passage with the passage's labels; validation and test predictions
always read the whole (max_len) sequence.
``pretrained`` = encoder weights from pretrain_midi; otherwise the same architecture from its
random initialisation (the ablation).

The head (the same for both variants) reads the masked mean and standard deviation over time of
every depth of the encoder (``layer_mix``; else of its last layer), standardised with the
training rows' statistics, through dropout and a linear layer. That linear layer is fitted in
closed form on the frozen encoder (stage 1): ridge regression of the standardised targets, the
penalty chosen among ``ridge_alphas`` by leave-one-out on the training rows (sklearn's RidgeCV).
Then ``max_epochs`` of full fine-tuning by gradient through that head, and after every epoch the
scaler and the ridge head are fitted again on the moved encoder, because the pooled features of
the lower depths vary little across segments and even a small learning rate moves them far
outside a fixed standardisation (measurements behind these choices: benchmarks/pretrain.md).
The best of the ridge stage and the epochs on the validation fold is kept.
"""
from __future__ import annotations

import collections
import json
import logging
import math
import multiprocessing as mp
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeCV

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.distributed import Rank, gather
from pianoeval.evaluate.inputs import write_predictions
from pianoeval.midibert.head import MidiBertRegressor
from pianoeval.midibert.model import MidiBertConfig
from pianoeval.midibert.pretrain import pad_batch
from pianoeval.models.protocols import cross_fit_protocols, fold_plan
from pianoeval.progress import Progress
from pianoeval.training import EarlyStopping, length_batches, mean_r2, set_determinism

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    """Fine-tuning settings: finetune_midi.train of params.yaml, with the stage's seeds, threads
    and device; no defaults here (params.yaml is their home)."""
    batch_size: int
    lr: float
    head_lr: float
    weight_decay: float
    warmup_frac: float
    max_epochs: int
    patience: int
    grad_clip: float
    head_dropout: float
    train_crop: int | None  # training sequences: a random window of this many tokens
    layer_mix: bool  # the head reads every depth of the encoder (else the last layer)
    ridge_alphas: tuple[float, ...]  # stage 1 penalties
    seed: int
    n_seeds: int  # fold models per fold, seeds seed .. seed + n_seeds - 1, predictions averaged
    num_threads: int
    device: str


@dataclass
class TokenData:
    """Token ids of labelled segments, ``seqs[i]`` (n_i, F), already cut to the encoder length."""

    segments: np.ndarray
    seqs: list[np.ndarray]

    def select(self, segments) -> "TokenData":
        pos = {s: i for i, s in enumerate(self.segments)}
        missing = [s for s in segments if s not in pos]
        if missing:
            raise KeyError(f"{len(missing)} segments have no tokens, e.g. {missing[:3]}")
        return TokenData(np.asarray(segments), [self.seqs[pos[s]] for s in segments])

    def lengths(self, idx) -> np.ndarray:
        return np.array([len(self.seqs[i]) for i in idx])


def load_encoders(path: str | Path) -> list[dict]:
    """The pre-trained encoder checkpoints of a folder (``seed<s>.pt``, by seed), or one file."""
    path = Path(path)
    files = sorted(path.glob("seed*.pt"), key=lambda f: int(f.stem[4:])) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise FileNotFoundError(f"no pre-trained encoder at {path} (seed<s>.pt files): run "
                                "`dvc repro pretrain_midi` first")
    encoders = [torch.load(f, weights_only=False) for f in files]
    if any(e["model_config"] != encoders[0]["model_config"] for e in encoders):
        raise ValueError(f"the encoders in {path} do not share one architecture")
    return encoders


def load_token_data(path, max_len: int) -> TokenData:
    """``percepiano.npz`` of the tokenize stage -> TokenData (segments cut to ``max_len``)."""
    z = np.load(path)
    off = z["offsets"]
    return TokenData(z["segments"], [z["ids"][off[i]:min(off[i + 1], off[i] + max_len)]
                                     for i in range(len(off) - 1)])


@dataclass
class BertFoldModel:
    model: MidiBertRegressor
    y_mean: np.ndarray
    y_std: np.ndarray
    y_low: np.ndarray
    y_high: np.ndarray
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    train_index: np.ndarray | None = None
    val_index: np.ndarray | None = None
    seconds: float = 0.0

    def checkpoint(self) -> dict:
        return {"state_dict": self.model.state_dict(), "model_config": asdict(self.model.cfg),
                "y_mean": self.y_mean.tolist(), "y_std": self.y_std.tolist(),
                "y_low": self.y_low.tolist(), "y_high": self.y_high.tolist(),
                "best_epoch": self.best_epoch, "history": self.history}


def _crop(seq: np.ndarray, length: int | None, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``length`` tokens (the whole sequence when shorter or no length)."""
    if not length or len(seq) <= length:
        return seq
    start = int(rng.integers(0, len(seq) - length + 1))
    return seq[start:start + length]


def _lr_factor(step: int, total: int, warmup_frac: float) -> float:
    w = max(1, int(warmup_frac * total))
    return min((step + 1) / w, max(0.0, (total - step) / max(1, total - w)))


@torch.no_grad()
def _predict_std(model, data: TokenData, idx: np.ndarray, pad_id: int, batch_size: int,
                 device: str) -> np.ndarray:
    model.eval()
    out = np.zeros((len(idx), model.out.out_features), np.float32)
    for part in length_batches(data.lengths(idx), batch_size, None):
        ids, valid = pad_batch([data.seqs[i] for i in idx[part]], pad_id)
        out[part] = model(ids.to(device), valid.to(device)).cpu().numpy()
    return out


def fit_fold_bert(data: TokenData, Y: np.ndarray, train_idx, val_idx, model_cfg: MidiBertConfig,
                  cfg: FinetuneConfig, encoder_state: dict | None = None) -> BertFoldModel:
    """Fine-tune on rows ``train_idx``; choose the epoch on rows ``val_idx``. ``encoder_state``
    None trains from scratch."""
    train_idx, val_idx = np.asarray(train_idx), np.asarray(val_idx)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"need training and validation rows, got {len(train_idx)} and {len(val_idx)}")
    if np.intersect1d(train_idx, val_idx).size:
        raise ValueError("training and validation rows overlap")
    start = time.perf_counter()
    set_determinism(cfg.seed, cfg.num_threads, cfg.device)
    rng = np.random.default_rng(cfg.seed)
    y_train = Y[train_idx]
    y_mean, y_std = y_train.mean(0), y_train.std(0)
    y_std = np.where(y_std > 1e-8, y_std, 1.0)
    z_train = torch.tensor((y_train - y_mean) / y_std, dtype=torch.float32)
    z_val = (Y[val_idx] - y_mean) / y_std

    model = MidiBertRegressor(model_cfg, Y.shape[1], cfg.head_dropout, cfg.layer_mix)
    if encoder_state is not None:
        model.load_encoder(encoder_state)
    model.to(cfg.device)
    alpha, train_loss = _fit_ridge_head(model, data, train_idx, z_train, cfg)
    val = _predict_std(model, data, val_idx, model_cfg.pad_id, 4 * cfg.batch_size, cfg.device)
    stopper = EarlyStopping(cfg.patience)
    history = [{"epoch": 0, "stage": "ridge", "alpha": alpha, "train_loss": train_loss,
                "val_loss": float(np.mean((val - z_val) ** 2)),
                "val_r2": mean_r2(Y[val_idx], val * y_std + y_mean)}]
    stopper.update(0, history[0]["val_loss"], model)
    head = [p for n, p in model.named_parameters() if not n.startswith("bert.")]
    opt = torch.optim.AdamW([{"params": model.bert.parameters(), "lr": cfg.lr},
                             {"params": head, "lr": cfg.head_lr}], weight_decay=cfg.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    lengths = data.lengths(train_idx)
    total = cfg.max_epochs * math.ceil(len(train_idx) / cfg.batch_size)

    step, first = 0, len(history)
    for epoch in range(first, first + cfg.max_epochs):
        model.train()
        loss_sum, count = 0.0, 0
        for part in length_batches(lengths, cfg.batch_size, rng):
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * _lr_factor(step, total, cfg.warmup_frac)
            seqs = [_crop(data.seqs[i], cfg.train_crop, rng) for i in train_idx[part]]
            ids, valid = pad_batch(seqs, model_cfg.pad_id)
            pred = model(ids.to(cfg.device), valid.to(cfg.device))
            loss = torch.mean((pred - z_train[part].to(cfg.device)) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            loss_sum += loss.item() * len(part)
            count += len(part)
            step += 1
        alpha, _ = _fit_ridge_head(model, data, train_idx, z_train, cfg)
        val = _predict_std(model, data, val_idx, model_cfg.pad_id, 4 * cfg.batch_size, cfg.device)
        val_loss = float(np.mean((val - z_val) ** 2))
        history.append({"epoch": epoch, "stage": "finetune", "alpha": alpha,
                        "train_loss": loss_sum / count, "val_loss": val_loss,
                        "val_r2": mean_r2(Y[val_idx], val * y_std + y_mean)})
        if stopper.update(epoch, val_loss, model):
            break
    stopper.restore(model)
    model.eval()
    return BertFoldModel(model, y_mean, y_std, y_train.min(0), y_train.max(0), stopper.best_epoch,
                         history, train_idx, val_idx, time.perf_counter() - start)


@torch.no_grad()
def _fit_ridge_head(model: MidiBertRegressor, data: TokenData, train_idx: np.ndarray,
                    z_train: torch.Tensor, cfg: FinetuneConfig) -> tuple[float, float]:
    """Stage 1: the pooling's scaler and the linear layer set from the frozen encoder's pooled
    features of the training rows (eval mode, whole segments): ridge regression on the
    standardised features, penalty by leave-one-out. Returns (penalty, training MSE)."""
    model.eval()
    raw = torch.zeros(len(train_idx), model.out.in_features)
    for part in length_batches(data.lengths(train_idx), 4 * cfg.batch_size, None):
        ids, valid = pad_batch([data.seqs[i] for i in train_idx[part]], model.cfg.pad_id)
        ids, valid = ids.to(cfg.device), valid.to(cfg.device)
        raw[part] = model.pool.raw(model.features(ids, valid), valid).cpu()
    raw = raw.to(cfg.device)
    model.pool.set_scaler(raw)
    x = ((raw - model.pool.shift) / model.pool.scale).cpu().numpy()
    ridge = RidgeCV(alphas=cfg.ridge_alphas).fit(x, z_train.numpy())
    model.out.weight.copy_(torch.as_tensor(ridge.coef_, dtype=torch.float32))
    model.out.bias.copy_(torch.as_tensor(ridge.intercept_, dtype=torch.float32))
    return float(ridge.alpha_), float(np.mean((ridge.predict(x) - z_train.numpy()) ** 2))


def predict_bert(fm: BertFoldModel, data: TokenData, idx, batch_size: int = 64,
                 device: str = "cpu") -> np.ndarray:
    """(len(idx), 19) predictions on the 0..1 label scale, clipped to the training range."""
    idx = np.asarray(idx)
    z = _predict_std(fm.model, data, idx, fm.model.cfg.pad_id, batch_size, device)
    return np.clip(z * fm.y_std + fm.y_mean, fm.y_low, fm.y_high)


def cross_fit_midibert(tokens: TokenData, labels: pd.DataFrame, splits: pd.DataFrame,
                       model_cfg: MidiBertConfig, cfg: FinetuneConfig,
                       encoder_states: list[dict] | None, split_names: Iterable[str],
                       n_jobs: int = 1, piece_seeds: int | None = None, rank: Rank = Rank()
                       ) -> tuple[dict[str, pd.DataFrame], dict[int, dict[str, pd.DataFrame]],
                                  dict[str, list[BertFoldModel]]] | None:
    """Fold models of every split (fold k: trained on what is neither fold k nor test, minus an
    inner validation fold it early-stops on (``fold_plan``); ``cfg.n_seeds`` of them, seeds ``cfg.seed + i``, seed index i
    starting from ``encoder_states[i % len(encoder_states)]``, or from random weights when
    ``encoder_states`` is None) and their predictions per protocol (``cross_fit_protocols``).
    Returns ({protocol: frame of the seeds' mean prediction}, {seed: {protocol: frame of that
    seed's models}}, {"<split>_<k>": [fold model per seed]}).

    Under torchrun (``rank.world`` > 1) the fold models are shared out over the processes (each
    is trained as in one process, so the outputs do not depend on the number of processes) and
    gathered by the main process, which returns the result; the others return None. Fold models
    are small, so sharing them out beats splitting each one's batches across processes."""
    if cfg.n_seeds < 1:
        raise ValueError(f"n_seeds must be at least 1, got {cfg.n_seeds}")
    segments = sorted(set(labels["segment"]) & set(splits["segment"]) & set(tokens.segments))
    if not segments:
        raise ValueError("no segment has labels, a split and tokens")
    data = tokens.select(segments)
    Y = labels.set_index("segment").loc[segments, list(DIMENSIONS)].to_numpy(float)
    split_rows = splits.set_index("segment").loc[segments].reset_index()
    split_names = list(split_names)
    if encoder_states is not None and not encoder_states:
        raise ValueError("encoder_states is empty: give None for random weights")
    seeds = [cfg.seed + s for s in range(cfg.n_seeds)]
    start = time.perf_counter()
    jobs = [(split, k, replace(cfg, seed=seed), np.flatnonzero(train & ~val), np.flatnonzero(val))
            for split, k, train, val, _, _ in fold_plan(split_rows, split_names, piece_seeds)
            for seed in seeds]
    fitted = collections.defaultdict(dict)

    def done(split, k, seed, fm):
        best = fm.history[fm.best_epoch]
        log.info("%s fold %d seed %d: best epoch %d of %d, val loss %.4f, val R2 %.3f, %.0f s",
                 split, k, seed, fm.best_epoch, len(fm.history), best["val_loss"], best["val_r2"],
                 fm.seconds)
        fitted[(split, k)][seed] = fm

    def encoder_of(seed):
        if encoder_states is None:
            return None
        return encoder_states[(seed - cfg.seed) % len(encoder_states)]

    # under torchrun each process fits every world-th fold model; the main process gathers them
    mine = [(job, (data, Y, job[3], job[4], model_cfg, job[2], encoder_of(job[2].seed)))
            for job in jobs[rank.index::rank.world]]
    variant = "scratch" if encoder_states is None else "pre-trained"
    with Progress(f"finetune_midi ({variant})", len(mine), "fold models") as progress:
        if n_jobs <= 1:
            for (split, k, c, _, _), a in mine:
                done(split, k, c.seed, fit_fold_bert(*a))
                progress.update()
        else:
            with ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(fit_fold_bert, *a): (s, k, c.seed)
                           for (s, k, c, _, _), a in mine}
                for future in as_completed(futures):
                    done(*futures[future], future.result())
                    progress.update()
    if rank.world > 1:
        shares = gather({key: {seed: _on(fm, "cpu") for seed, fm in by_seed.items()}
                         for key, by_seed in fitted.items()}, rank)
        if not rank.main:
            return None
        for share in shares:
            for key, by_seed in share.items():
                fitted[key].update({seed: _on(fm, cfg.device) for seed, fm in by_seed.items()})

    def predict(fm, mask):
        return predict_bert(fm, data, np.flatnonzero(mask), 4 * cfg.batch_size, cfg.device)

    per_seed = {}
    for seed in seeds:
        def fit(split, k, train, val, seed=seed):
            fm = fitted[(split, k)][seed]
            assert np.array_equal(fm.train_index, np.flatnonzero(train & ~val))
            assert np.array_equal(fm.val_index, np.flatnonzero(val))
            return fm

        per_seed[seed], _ = cross_fit_protocols(np.asarray(segments), split_rows, fit, predict,
                                                split_names, piece_seeds)
    # the seeds' mean of the (clipped) predictions: a seed ensemble, as train_fusion's n_seeds
    dims = list(DIMENSIONS)
    mean = {}
    for protocol, frame in per_seed[seeds[0]].items():
        mean[protocol] = frame.copy()
        mean[protocol][dims] = np.mean([per_seed[s][protocol][dims].to_numpy() for s in seeds], axis=0)
    models = {f"{split}_{k}": [fitted[(split, k)][s] for s in seeds] for split, k, *_ in jobs}
    log.info("%d fold models (%s) in %.0f s", len(jobs), variant, time.perf_counter() - start)
    return mean, per_seed, models


def _on(fm: BertFoldModel, device: str) -> BertFoldModel:
    fm.model.to(device)
    return fm


def write_variant(name: str, result: tuple, encoder_seeds: list | None, predictions: Path,
                  checkpoints: Path, logs: Path) -> None:
    """One variant's outputs, from ``cross_fit_midibert``'s ``result``: the seeds' mean
    predictions in ``predictions/<name>/<protocol>.csv``, each seed's own in
    ``checkpoints/<name>/predictions_seed<s>/``, the fold checkpoints
    ``checkpoints/<name>/<split>_<k>[_seed<s>].pt``, per-epoch records in
    ``logs/<name>.jsonl`` and a summary (best epoch and its scores per fold model) in
    ``logs/<name>.json``. ``encoder_seeds``: the pre-trained encoders' seeds (None: scratch)."""
    mean, per_seed, models = result
    write_predictions(predictions / name, mean)
    ckpt = checkpoints / name
    shutil.rmtree(ckpt, ignore_errors=True)
    ckpt.mkdir(parents=True)
    for seed, frames in per_seed.items():  # each seed's single models, for compare_midibert
        write_predictions(ckpt / f"predictions_seed{seed}", frames)
    logs.mkdir(parents=True, exist_ok=True)
    summary = {"pretrained": encoder_seeds is not None, "folds": {}, "encoder_seeds": encoder_seeds}
    with open(logs / f"{name}.jsonl", "w") as f:
        for fold, fms in models.items():
            for seed, fm in zip(per_seed, fms):  # one seed keeps the plain fold name
                key = fold if len(fms) == 1 else f"{fold}_seed{seed}"
                torch.save(fm.checkpoint(), ckpt / f"{key}.pt")
                for record in fm.history:
                    f.write(json.dumps({"fold": key, **_rounded(record)}) + "\n")
                summary["folds"][key] = {"best_epoch": fm.best_epoch, "epochs": len(fm.history),
                                         **_rounded(fm.history[fm.best_epoch], skip="epoch")}
    (logs / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")


def _rounded(record: dict, skip: str | None = None) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items() if k != skip}
