"""DVC stage `train_tiers`: tier scorers trained with a pairwise margin ranking loss and scored
on works held out from their training (GroupKFold by work).

Two scorers: one on the MIDI samples' features (symbolic + composed alignment), one on the audio
samples' spectral features. Writes data/tiers/scores.csv (out-of-fold score per sample) and
metrics/tiers.json (pairwise ranking accuracy and mean Kendall tau, overall, per family, per
variant and per tier gap).
"""
import argparse
import json
import logging
from pathlib import Path

import pandas as pd
import torch

from pianoeval.models.tiers import RankerConfig
from pianoeval.params import load_params
from pianoeval.train.tiers import cross_fit_scores, ranking_report

log = logging.getLogger("train_tiers")
META = ("sample", "item", "source", "work", "family", "variant", "tier")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--degrade", type=Path, default=Path("data/degrade"))
    parser.add_argument("--out", type=Path, default=Path("data/tiers/scores.csv"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/tiers.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params("train_tiers")
    torch.set_num_threads(int(params["num_threads"]))
    config = RankerConfig(hidden=int(params["hidden"]), margin=float(params["margin"]),
                          lr=float(params["lr"]), weight_decay=float(params["weight_decay"]),
                          epochs=int(params["epochs"]), seed=int(params["seed"]))
    samples = pd.read_csv(args.degrade / "samples.csv", low_memory=False)
    pairs = pd.read_csv(args.degrade / "pairs.csv")

    scored, metrics = [], {}
    is_audio = samples["family"] == "audio"
    for modality, rows in (("midi", samples[~is_audio]), ("audio", samples[is_audio])):
        if rows["work"].nunique() < 2:
            log.warning("%s: %d sample(s) from %d work(s), nothing to hold out: skipped",
                        modality, len(rows), rows["work"].nunique())
            continue
        features = [c for c in rows.columns if c not in META and not c.startswith("deg_")
                    and (c.startswith("audio_") == (modality == "audio"))]
        rows = rows.reset_index(drop=True)
        scores = cross_fit_scores(rows, pairs, features, config, int(params["n_folds"]))
        scored.append(rows[list(META)].assign(modality=modality, score=scores))
        metrics[modality] = ranking_report(rows.assign(score=scores), pairs)
        log.info("%s: pairwise accuracy %.3f on held-out works (%d pairs, %d features)", modality,
                 metrics[modality]["pairwise_accuracy"], metrics[modality]["n_pairs"], len(features))
    all_scores = pd.concat(scored, ignore_index=True)
    metrics = {"pairwise_accuracy": ranking_report(all_scores, pairs)["pairwise_accuracy"],
               **metrics}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    all_scores.to_csv(args.out, index=False, float_format="%.6g")
    args.metrics.parent.mkdir(parents=True, exist_ok=True)
    args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
