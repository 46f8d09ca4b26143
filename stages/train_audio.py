"""DVC stage `train_audio`: audio-only models on pooled embeddings of the PercePiano renders.

Trains ridge and an MLP head on the embeddings of `train_audio.soundfont`'s renders, one model
per fold of every split, and writes metrics/predictions/audio_<encoder>_<model>/<protocol>.csv
(the baselines' format). The cross-soundfont check trains on one soundfont's renders and
predicts another's, for every pair, and writes metrics/audio_cross_soundfont.json.
"""
import argparse
import json
from pathlib import Path

import pandas as pd

from pianoeval.audio.encode import load_pooled
from pianoeval.audio_only.train import (cross_soundfont_report, cross_soundfonts, fit_audio_models,
                                        labelled)
from pianoeval.evaluate.inputs import write_predictions
from pianoeval.logs import setup_logging
from pianoeval.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for arg, default in (("embeddings", "data/embeddings"), ("labels", "data/labels.csv"),
                         ("splits", "data/splits.csv"), ("predictions", "metrics/predictions"),
                         ("cross", "metrics/audio_cross_soundfont.json")):
        parser.add_argument(f"--{arg}", type=Path, default=Path(default))
    args = parser.parse_args()
    log = setup_logging("train_audio")
    params = load_params("train_audio")
    encoder, source = params["encoder"], params["source"]
    root = args.embeddings / encoder
    labels, splits = pd.read_csv(args.labels), pd.read_csv(args.splits, dtype=str)

    def table(soundfont: str) -> tuple[pd.DataFrame, list[str]]:
        emb, cols = load_pooled(root, source, soundfont)
        return labelled(labels, emb, soundfont), cols

    data, cols = table(params["soundfont"])
    log.info("%s/%s: %d segments x %d features", encoder, params["soundfont"], len(data), len(cols))
    for model, predictions in fit_audio_models(params, data, cols, splits):
        write_predictions(args.predictions / f"audio_{encoder}_{model}", predictions)
        log.info("audio_%s_%s: %s", encoder, model, sorted(predictions))

    index = pd.read_csv(root / "index.csv", keep_default_na=False)
    tables = {sf: table(sf) for sf in cross_soundfonts(index, source, params["cross_soundfont"])}
    report = cross_soundfont_report(params, tables, labels, splits)
    args.cross.parent.mkdir(parents=True, exist_ok=True)
    args.cross.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
