"""Ridge probe of the MIDI encoder's states: do the pre-trained states say more about the
PercePiano labels than a random encoder's? -> benchmarks/pretrain_alibi/ridge_probe.json

Features: the fine-tuning head's pooling (``StatsPool.raw``: masked mean and std over time) of
each depth, and of all depths concatenated; ridge (standardised features, RidgeCV) fitted on the
training folds, scored on the pooled out-of-fold predictions of the 4 validation folds of the
piece and performer splits. Test rows are never fitted or scored. R2 = mean over the 19
dimensions of 1 - SS_res / SS_tot.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.splits import SPLIT_COLUMNS, fold_masks
from pianoeval.models.midibert import MidiBertConfig
from pianoeval.models.midibert_head import MidiBertRegressor
from pianoeval.params import load_params
from pianoeval.train.finetune import load_token_data
from pianoeval.train.pretrain import pad_batch

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def depth_features(reg: MidiBertRegressor, seqs: list[np.ndarray], n_depths: int) -> list[np.ndarray]:
    reg.eval()
    rows = []
    for i in range(0, len(seqs), 32):
        ids, valid = pad_batch(seqs[i:i + 32], reg.cfg.pad_id)
        rows.append(reg.pool.raw(reg.features(ids, valid), valid).numpy())
    raw = np.concatenate(rows)
    return np.split(raw, n_depths, axis=1)  # per depth: [mean, std] of that depth


def validation_r2(X: np.ndarray, Y: np.ndarray, split: pd.Series, n_folds: int) -> float:
    pred, scored = np.full_like(Y, np.nan), np.zeros(len(Y), bool)
    for _, train, held_out, _ in fold_masks(split, n_folds):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 11)))
        pred[held_out] = model.fit(X[train], Y[train]).predict(X[held_out])
        scored |= held_out
    return round(float(r2_score(Y[scored], pred[scored])), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default=ROOT / "models/pretrain/encoder.pt")
    parser.add_argument("--out", default=ROOT / "benchmarks/pretrain_alibi/ridge_probe.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ck = torch.load(args.encoder, weights_only=False)
    cfg = MidiBertConfig(**ck["model_config"])
    tokens = load_token_data(ROOT / "data/tokens/percepiano.npz", cfg.max_len)
    labels = pd.read_csv(ROOT / "data/labels.csv").set_index("segment")
    splits = pd.read_csv(ROOT / "data/splits.csv", dtype=str).set_index("segment")
    n_folds = load_params("splits", ROOT / "params.yaml")["n_folds"]
    segments = sorted(set(labels.index) & set(tokens.segments))
    seqs = tokens.select(segments).seqs
    Y = labels.loc[segments, list(DIMENSIONS)].to_numpy(float)
    result = {"encoder": str(Path(args.encoder).resolve().relative_to(ROOT)), "steps": ck.get("steps")}
    for name in ("pretrained", "random"):
        torch.manual_seed(0)
        reg = MidiBertRegressor(cfg, layer_mix=True)
        if name == "pretrained":
            reg.load_encoder(ck["state_dict"])
        depths = depth_features(reg, seqs, cfg.n_layers + 1)
        result[name] = {}
        for split in ("piece", "performer"):
            folds = splits.loc[segments, SPLIT_COLUMNS[split]]
            result[name][split] = {
                "per_depth": [validation_r2(X, Y, folds, n_folds) for X in depths],
                "all_depths": validation_r2(np.concatenate(depths, 1), Y, folds, n_folds)}
        print(name, json.dumps(result[name]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
