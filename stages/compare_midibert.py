"""DVC stage `compare_midibert`: the pre-trained MIDI encoder against the same architecture
trained from scratch, per protocol: R^2 with CIs (scored as the evaluate stage scores them, with its params) and
Williams' test per dimension, in ``metrics/midibert_comparison.json``. It reads the two
models' predictions, not ``metrics/eval.json``, so retraining another model does not rerun it."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from pianoeval.evaluate.pairwise import compare_pair
from pianoeval.params import load_params

log = logging.getLogger("compare_midibert")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--labels", default="data/labels.csv")
    parser.add_argument("--predictions", default="metrics/predictions")
    parser.add_argument("--out", default="metrics/midibert_comparison.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    a, b = "midibert_pretrained", "midibert_scratch"
    ev = load_params("evaluate", args.params)
    labels = pd.read_csv(args.labels)
    out = {}
    for protocol in ev["protocols"]:
        files = [Path(args.predictions) / m / f"{protocol}.csv" for m in (a, b)]
        if not all(f.is_file() for f in files):
            continue
        out[protocol] = compare_pair(pd.read_csv(files[0]), pd.read_csv(files[1]), labels, a, b,
                                     ev["n_resamples"], ev["seed"], ev["confidence"])
        w = out[protocol]["williams"]
        log.info("%s: R2 %.3f vs %.3f; Williams p<.05: %d dims better, %d worse", protocol,
                 out[protocol][a]["r2"], out[protocol][b]["r2"], w["n_better_p05"], w["n_worse_p05"])
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
