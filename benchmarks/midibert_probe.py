"""Ridge probe of the MIDI encoders' states: do the pre-trained states say more about the
PercePiano labels than random encoders'? -> benchmarks/pretrain_alibi/ridge_probe.json

Features: the fine-tuning head's pooling (``StatsPool.raw``: masked mean and std over time) of
each depth, and of all depths concatenated; ridge (standardised features, RidgeCV) fitted on the
training folds, scored on the pooled out-of-fold predictions of the 4 validation folds of the
piece and performer splits. Every pre-trained encoder in --encoders is probed, and as many
random encoders (torch seeds 0, 1, ...); ``ensemble`` scores the mean of their all-depth
predictions, as finetune_midi averages its seeds. Test rows are never fitted or scored.
R2 = mean over the 19 dimensions of 1 - SS_res / SS_tot.
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
from pianoeval.data.splits import fold_masks, split_columns
from pianoeval.midibert.finetune import load_encoders, load_token_data
from pianoeval.midibert.head import MidiBertRegressor
from pianoeval.midibert.model import MidiBertConfig
from pianoeval.midibert.pretrain import pad_batch

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


def validation_predictions(X: np.ndarray, Y: np.ndarray, split: pd.Series
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions of the validation folds, and the mask of the rows they cover."""
    pred, scored = np.full_like(Y, np.nan), np.zeros(len(Y), bool)
    for _, train, held_out, _ in fold_masks(split):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 11)))
        pred[held_out] = model.fit(X[train], Y[train]).predict(X[held_out])
        scored |= held_out
    return pred, scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default=ROOT / "models/pretrain/encoders",
                        help="folder of pre-trained encoders (seed<s>.pt)")
    parser.add_argument("--out", default=ROOT / "benchmarks/pretrain_alibi/ridge_probe.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoints = load_encoders(args.encoders)
    cfg = MidiBertConfig(**checkpoints[0]["model_config"])
    tokens = load_token_data(ROOT / "data/tokens/percepiano.npz", cfg.max_len)
    labels = pd.read_csv(ROOT / "data/labels.csv").set_index("segment")
    splits = pd.read_csv(ROOT / "data/splits.csv", dtype=str).set_index("segment")
    segments = sorted(set(labels.index) & set(tokens.segments))
    seqs = tokens.select(segments).seqs
    Y = labels.loc[segments, list(DIMENSIONS)].to_numpy(float)
    result = {"encoders": str(Path(args.encoders).resolve().relative_to(ROOT)),
              "seeds": [ck.get("seed") for ck in checkpoints],
              "steps": [ck.get("steps") for ck in checkpoints]}
    for name in ("pretrained", "random"):
        per_split = {split: {"per_encoder": [], "all_depth_predictions": []}
                     for split in ("piece", "performer")}
        for i, ck in enumerate(checkpoints):
            torch.manual_seed(i)
            reg = MidiBertRegressor(cfg, layer_mix=True)
            if name == "pretrained":
                reg.load_encoder(ck["state_dict"])
            depths = depth_features(reg, seqs, cfg.n_layers + 1)
            for split, out in per_split.items():
                column = next(iter(split_columns(splits, [split], piece_seeds=1).values()))
                folds = splits.loc[segments, column]
                r2 = []
                for X in depths + [np.concatenate(depths, 1)]:
                    pred, scored = validation_predictions(X, Y, folds)
                    r2.append(_r2(Y[scored], pred[scored]))
                out["per_encoder"].append({"per_depth": r2[:-1], "all_depths": r2[-1]})
                out["all_depth_predictions"].append(pred)
        result[name] = {}
        for split, out in per_split.items():
            scored = ~np.isnan(out["all_depth_predictions"][0][:, 0])
            ensemble = np.mean(out.pop("all_depth_predictions"), axis=0)
            result[name][split] = {**out, "ensemble": _r2(Y[scored], ensemble[scored])}
        print(name, json.dumps(result[name]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return round(float(r2_score(y, pred)), 3)


if __name__ == "__main__":
    main()
