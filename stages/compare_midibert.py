"""DVC stage `compare_midibert`: the pre-trained MIDI encoder against the same architecture
trained from scratch, for every prediction file both have (each piece seed separately;
metrics/comparisons.json holds the paired test over seeds): R^2 with CIs by passage group (with
the evaluate stage's params) and Williams' test per dimension, in
``metrics/midibert_comparison.json``. It reads the two models' predictions, not
``metrics/eval.json``, so retraining another model does not rerun it.

Per protocol: the seed-averaged predictions (the models scored by ``evaluate``) at the top
level, each fine-tuning seed's single models under ``per_seed``, and under ``seed_mean`` the
mean over seeds of the single models' R2 and how many seeds the pre-trained model wins
(``seeds_a_better``). Both seed averages are ensembles of different encoders (pre-trained
seed i starts from pretrain_midi's encoder i, scratch seed i from random init i); the single
models compare one encoder with one."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from pianoeval.evaluate.pairwise import compare_pair, summarise_seeds
from pianoeval.params import load_params

log = logging.getLogger("compare_midibert")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--splits", default="data/splits.csv", help="passage groups (CI unit)")
    parser.add_argument("--predictions", default="metrics/predictions")
    parser.add_argument("--checkpoints", default="models/finetune",
                        help="finetune_midi's folder with each seed's predictions")
    parser.add_argument("--out", default="metrics/midibert_comparison.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    a, b = "midibert_pretrained", "midibert_scratch"
    ev = load_params("evaluate", args.params)
    labels = pd.read_csv(args.labels)
    splits = pd.read_csv(args.splits, dtype=str)
    groups = dict(zip(splits["segment"], splits["group"]))
    out = {}
    for protocol in sorted(f.stem for f in (Path(args.predictions) / a).glob("*.csv")):
        files = [Path(args.predictions) / m / f"{protocol}.csv" for m in (a, b)]
        if not all(f.is_file() for f in files):
            continue
        compare = lambda pa, pb: compare_pair(pd.read_csv(pa), pd.read_csv(pb), labels, a, b,
                                              ev["n_resamples"], ev["seed"], ev["confidence"],
                                              groups=groups)
        out[protocol] = compare(*files)
        w = out[protocol]["williams"]
        log.info("%s: R2 %.3f vs %.3f; Williams p<.05: %d dims better, %d worse", protocol,
                 out[protocol][a]["r2"], out[protocol][b]["r2"], w["n_better_p05"], w["n_worse_p05"])
        seed_dirs = sorted((Path(args.checkpoints) / a).glob("predictions_seed*"),
                           key=lambda d: int(d.name.removeprefix("predictions_seed")))
        per_seed = {d.name.removeprefix("predictions_"): compare(
            *(Path(args.checkpoints) / m / d.name / f"{protocol}.csv" for m in (a, b)))
            for d in seed_dirs}
        if per_seed:
            out[protocol]["per_seed"] = {
                seed: {a: c[a], b: c[b], "r2_difference": c["r2_difference"],
                       "williams_better_worse": [c["williams"]["n_better_p05"],
                                                 c["williams"]["n_worse_p05"]]}
                for seed, c in per_seed.items()}
            out[protocol]["seed_mean"] = summarise_seeds(per_seed, a, b)
            log.info("%s single models: %s", protocol, out[protocol]["seed_mean"])
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
