"""DVC stage `train_tiers`: tier scorers trained with a pairwise margin ranking loss and scored
on works held out from their training (GroupKFold by work).

Two scorers: one on the MIDI samples' features (symbolic + composed alignment), one on the audio
samples' spectral features. Writes data/tiers/scores.csv (out-of-fold score per sample) and
metrics/tiers.json (pairwise ranking accuracy and mean Kendall tau, overall, per family, per
variant and per tier gap).
"""
import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from pianoeval.logs import setup_logging
from pianoeval.params import load_params
from pianoeval.tier_ranker.train import ranker_config, score_modalities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--degrade", type=Path, default=Path("data/degrade"))
    parser.add_argument("--out", type=Path, default=Path("data/tiers/scores.csv"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/tiers.json"))
    args = parser.parse_args()
    setup_logging()
    params = load_params("train_tiers")
    torch.set_num_threads(int(params["num_threads"]))  # the scores depend on the thread count
    samples = pd.read_csv(args.degrade / "samples.csv", low_memory=False)
    pairs = pd.read_csv(args.degrade / "pairs.csv")

    scores, metrics = score_modalities(samples, pairs, ranker_config(params),
                                       int(params["n_folds"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scores.to_csv(args.out, index=False, float_format="%.6g")
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
