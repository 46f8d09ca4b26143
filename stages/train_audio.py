"""DVC stage `train_audio`: audio-only models on pooled embeddings of the PercePiano renders.

Trains ridge and an MLP head on the embeddings of `train_audio.soundfont`'s renders, one model
per fold of every split, and writes metrics/predictions/audio_<encoder>_<model>/<protocol>.csv
(the baselines' format). The cross-soundfont check trains on one soundfont's renders and
predicts another's, for every pair, and writes metrics/audio_cross_soundfont.json.
"""
import argparse
import itertools
import json
import logging
import re
import time
from pathlib import Path

import pandas as pd

from pianoeval.evaluate.metrics import score_protocol
from pianoeval.evaluate.report import stack_predictions
from pianoeval.models.audio import cross_fit_audio, load_pooled, standardize_per_domain
from pianoeval.params import load_params

log = logging.getLogger("train_audio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--labels", type=Path, default=Path("data/labels.csv"))
    parser.add_argument("--splits", type=Path, default=Path("data/splits.csv"))
    parser.add_argument("--predictions", type=Path, default=Path("metrics/predictions"))
    parser.add_argument("--cross", type=Path, default=Path("metrics/audio_cross_soundfont.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params("train_audio")
    encoder, source = params["encoder"], params["source"]
    root = args.embeddings / encoder
    labels = pd.read_csv(args.labels)
    splits = pd.read_csv(args.splits, dtype=str)
    groups = dict(zip(splits["segment"], splits["group"]))

    def table(soundfont: str):
        emb, cols = load_pooled(root, source, soundfont)
        data = labels.merge(emb, on="segment")
        if len(data) < len(labels):
            log.warning("%s: %d labelled segments have no embedding and are left out",
                        soundfont, len(labels) - len(data))
        return data, cols

    data, cols = table(params["soundfont"])
    log.info("%s/%s: %d segments x %d features", encoder, params["soundfont"], len(data), len(cols))
    for model in params["models"]:
        start = time.perf_counter()
        predictions, _ = cross_fit_audio(model, params, data, cols, splits, params["splits"])
        out = args.predictions / f"audio_{encoder}_{model}"
        out.mkdir(parents=True, exist_ok=True)
        for protocol, frame in predictions.items():
            frame.to_csv(out / f"{protocol}.csv", index=False, float_format="%.6f")
        log.info("%s: %s in %.1f s", out, sorted(predictions), time.perf_counter() - start)

    cross = params["cross_soundfont"]
    report = {"encoder": encoder, "protocols": cross["protocols"],
              "note": "R² and r averaged over the fold models on *_test (as evaluate does), CIs "
                      "by passage group; piece: the first seed of splits.seeds; "
                      "standardize per_soundfont: every feature z-scored within each "
                      "soundfont's renders (no labels) before training/predicting",
              "pairs": []}
    index = pd.read_csv(root / "index.csv", keep_default_na=False)
    available = sorted(set(index.loc[(index["status"] == "ok") & (index["source"] == source),
                                     "soundfont"]))
    soundfonts = [s for s in (cross["soundfonts"] or available) if s in available]
    if cross["enabled"] and len(soundfonts) > 1:
        tables = {sf: table(sf) for sf in soundfonts}
        common = set.intersection(*(set(t["segment"]) for t, _ in tables.values()))
        tables = {sf: (t[t["segment"].isin(common)].reset_index(drop=True), c)
                  for sf, (t, c) in tables.items()}
        split_names = tuple(dict.fromkeys(p.rsplit("_", 1)[0] for p in cross["protocols"]))
        for model, standardize, train_sf, test_sf in itertools.product(
                cross["models"], cross["standardize"], soundfonts, soundfonts):
            if standardize not in ("none", "per_soundfont"):
                raise ValueError(f"cross_soundfont.standardize: {standardize!r} is not none or "
                                 "per_soundfont")
            if standardize != "none" and train_sf == test_sf:
                continue  # within one soundfont the models standardise anyway: same as none
            (train_data, cols), (test_data, _) = tables[train_sf], tables[test_sf]
            if standardize == "per_soundfont":
                train_data = standardize_per_domain(train_data, cols)
                test_data = standardize_per_domain(test_data, cols)
            predictions, _ = cross_fit_audio(model, params, train_data, cols, splits, split_names,
                                             predict_data=test_data, piece_seeds=1)
            predictions = {re.sub(r"^piece_s\d+_", "piece_", k): v for k, v in predictions.items()}
            row = {"model": model, "standardize": standardize, "train": train_sf,
                   "test": test_sf}
            for protocol in cross["protocols"]:
                s = stack_predictions(predictions[protocol], labels)
                sc = score_protocol(s.y_true, s.y_pred, s.passages, clusters=[groups[g] for g in s.segments],
                                    n_resamples=int(cross["n_resamples"]), seed=0)
                row[protocol] = {"r2": sc["r2"], "r2_ci": sc["r2_ci"],
                                 "pearson_r": sc["pearson_r"],
                                 "pearson_r_ci": sc["pearson_r_ci"], "n": sc["n"]}
            report["pairs"].append(row)
            log.info("cross-soundfont %s (%s): train %s -> test %s: R² %s", model, standardize,
                     train_sf, test_sf, {p: row[p]["r2"] for p in cross["protocols"]})
    elif cross["enabled"]:
        log.warning("cross-soundfont check skipped: embeddings of only %s", soundfonts)
    args.cross.parent.mkdir(parents=True, exist_ok=True)
    args.cross.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
