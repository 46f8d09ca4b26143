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
import argparse
import json
from pathlib import Path

import pandas as pd

from pianoeval.evaluate.pairwise import compare_protocol, seed_folders, shared_protocols
from pianoeval.logs import setup_logging
from pianoeval.params import load_params


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
    log = setup_logging("compare_midibert")
    a, b = "midibert_pretrained", "midibert_scratch"
    ev = load_params("evaluate", args.params)
    kw = {k: ev[k] for k in ("n_resamples", "seed", "confidence")}
    labels = pd.read_csv(args.labels)
    splits = pd.read_csv(args.splits, dtype=str)
    groups = dict(zip(splits["segment"], splits["group"]))
    read = lambda folder, name: tuple(pd.read_csv(Path(folder) / m / name) for m in (a, b))
    seeds = seed_folders(Path(args.checkpoints) / a)
    out = {}
    for protocol in shared_protocols(Path(args.predictions), a, b):
        per_seed = {s: read(args.checkpoints, f"{d}/{protocol}.csv") for s, d in seeds.items()}
        out[protocol] = c = compare_protocol(read(args.predictions, f"{protocol}.csv"), per_seed,
                                             labels, a, b, groups=groups, **kw)
        w = c["williams"]
        log.info("%s: R2 %.3f vs %.3f; Williams p<.05: %d dims better, %d worse", protocol,
                 c[a]["r2"], c[b]["r2"], w["n_better_p05"], w["n_worse_p05"])
        if "seed_mean" in c:
            log.info("%s single models: %s", protocol, c["seed_mean"])
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
