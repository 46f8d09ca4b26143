"""Pre-trained vs scratch per fine-tuning seed, from the fold models `finetune_midi` saved
(models/finetune/<model>/<split>_<k>_seed<s>.pt): each seed's single models against the
pipeline's seed average -> benchmarks/pretrain_alibi/comparison_per_seed.json.

Predictions are re-made from the checkpoints exactly as the stage makes them (same folds, same
clipping); each seed's protocols are scored with `compare_pair` (R2 with BCa CIs, Williams' test
per dimension), as `compare_midibert` scores the seed average.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.evaluate.pairwise import compare_pair
from pianoeval.models.midibert import MidiBertConfig
from pianoeval.models.midibert_head import MidiBertRegressor
from pianoeval.models.protocols import cross_fit_protocols
from pianoeval.params import load_params
from pianoeval.train.finetune import BertFoldModel, load_token_data, predict_bert

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("midibert_pretrained", "midibert_scratch")


def load_fold_model(path: Path) -> BertFoldModel:
    ck = torch.load(path, weights_only=False)
    cfg = MidiBertConfig(**ck["model_config"])
    n_features = ck["state_dict"]["out.weight"].shape[1]
    model = MidiBertRegressor(cfg, len(DIMENSIONS), layer_mix=n_features > 2 * cfg.d_model)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    stats = [np.asarray(ck[k]) for k in ("y_mean", "y_std", "y_low", "y_high")]
    return BertFoldModel(model, *stats, ck["best_epoch"], ck["history"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=ROOT / "benchmarks/pretrain_alibi/comparison_per_seed.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    p = load_params("finetune_midi", ROOT / "params.yaml")
    ev = load_params("evaluate", ROOT / "params.yaml")
    n_folds = load_params("splits", ROOT / "params.yaml")["n_folds"]
    labels = pd.read_csv(ROOT / "data/labels.csv")
    splits = pd.read_csv(ROOT / "data/splits.csv", dtype=str)
    first = load_fold_model(next((ROOT / "models/finetune" / MODELS[0]).glob("*.pt")))
    tokens = load_token_data(ROOT / "data/tokens/percepiano.npz", first.model.cfg.max_len)
    segments = sorted(set(labels["segment"]) & set(splits["segment"]) & set(tokens.segments))
    data = tokens.select(segments)
    rows = splits.set_index("segment").loc[segments].reset_index()
    result = {}
    for s in range(p["seed"], p["seed"] + p["n_seeds"]):
        preds = {}
        for name in MODELS:
            ckpt = ROOT / "models/finetune" / name
            preds[name], _ = cross_fit_protocols(
                np.asarray(segments), rows,
                lambda split, k, train, held: load_fold_model(ckpt / f"{split}_{k}_seed{s}.pt"),
                lambda fm, mask: predict_bert(fm, data, np.flatnonzero(mask)), n_folds, p["splits"])
        result[f"seed{s}"] = {}
        for protocol in preds[MODELS[0]]:
            c = compare_pair(preds[MODELS[0]][protocol], preds[MODELS[1]][protocol], labels, *MODELS,
                             ev["n_resamples"], ev["seed"], ev["confidence"])
            result[f"seed{s}"][protocol] = {
                **{m: {"r2": c[m]["r2"], "r2_ci": c[m]["r2_ci"]} for m in MODELS},
                "r2_difference": c["r2_difference"],
                "williams_better_worse": [c["williams"]["n_better_p05"], c["williams"]["n_worse_p05"]]}
            print(f"seed {s} {protocol}: {c[MODELS[0]]['r2']:.3f} vs {c[MODELS[1]]['r2']:.3f}", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
