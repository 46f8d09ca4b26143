"""The ``train_audio`` stage's logic: labelled embedding tables and the cross-soundfont check
(train the audio models on one soundfont's renders, predict and score another's)."""
from __future__ import annotations

import itertools
import logging
import re
import time
from typing import Iterator

import pandas as pd

from pianoeval.audio_only.model import cross_fit_audio, standardize_per_domain
from pianoeval.data.splits import split_columns
from pianoeval.evaluate.metrics import score_protocol
from pianoeval.evaluate.report import stack_predictions
from pianoeval.models.protocols import fold_plan
from pianoeval.progress import Progress

log = logging.getLogger(__name__)

STANDARDIZE = ("none", "per_soundfont")
CROSS_NOTE = ("R² and r averaged over the fold models on *_test (as evaluate does), CIs by "
              "passage group; piece: the first seed of splits.seeds; standardize per_soundfont: "
              "every feature z-scored within each soundfont's renders (no labels) before "
              "training/predicting")


def labelled(labels: pd.DataFrame, embeddings: pd.DataFrame, name: str) -> pd.DataFrame:
    """The labelled segments that have an embedding (labels' columns, then the embedding's);
    logs how many of ``name``'s labelled segments have none."""
    data = labels.merge(embeddings, on="segment")
    if len(data) < len(labels):
        log.warning("%s: %d labelled segments have no embedding and are left out",
                    name, len(labels) - len(data))
    return data


def fit_audio_models(params: dict, data: pd.DataFrame, cols: list[str], splits: pd.DataFrame
                     ) -> Iterator[tuple[str, dict[str, pd.DataFrame]]]:
    """``(model, predictions per protocol)`` of every model of ``params["models"]`` (the
    train_audio section) cross-fitted on ``data`` over ``params["splits"]``. Each model is
    fitted one split at a time (the piece split one seed at a time), which makes the same fold
    models and predictions as one call over all splits, so that progress can count the fold
    models split by split (one progress per model: an MLP fold model costs far more than a
    ridge one)."""
    units = list(split_columns(splits, params["splits"]))  # piece -> piece_s<seed>, ...
    rows = data[["segment"]].merge(splits, on="segment", validate="one_to_one")
    n_models = sum(len(fold_plan(rows, [unit])) for unit in units)
    for model in params["models"]:
        start, predictions = time.perf_counter(), {}
        with Progress(f"train_audio {model}", n_models, "fold models") as progress:
            for unit in units:
                unit_predictions, models = cross_fit_audio(model, params, data, cols, splits,
                                                           (unit,))
                predictions.update(unit_predictions)
                progress.update(len(models))
        log.info("%s: %d fold models in %.1f s", model, progress.n, time.perf_counter() - start)
        yield model, predictions


def cross_soundfonts(index: pd.DataFrame, source: str, cross: dict) -> list[str]:
    """The soundfonts the cross-soundfont check runs on (``cross``: its params section): those
    of ``cross["soundfonts"]`` (all if empty, sorted) with embeddings of ``source`` renders in
    the encoder's ``index`` table; none when the check is off or fewer than two have them."""
    if not cross["enabled"]:
        return []
    ok = index[(index["status"] == "ok") & (index["source"] == source)]
    available = sorted(set(ok["soundfont"]))
    soundfonts = [s for s in (cross["soundfonts"] or available) if s in available]
    if len(soundfonts) < 2:
        log.warning("cross-soundfont check skipped: embeddings of only %s", soundfonts)
        return []
    return soundfonts


def on_common_segments(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every table restricted to the segments all of them have, so that each (train, test)
    pair of soundfonts is scored on the same rows."""
    common = set.intersection(*(set(t["segment"]) for t in tables.values()))
    return {k: t[t["segment"].isin(common)].reset_index(drop=True) for k, t in tables.items()}


def cross_pairs(models: list[str], standardize: list[str], soundfonts: list[str]
                ) -> Iterator[tuple[str, str, str, str]]:
    """``(model, standardize, train, test)`` of every run of the check, in report order."""
    bad = [s for s in standardize if s not in STANDARDIZE]
    if bad:
        raise ValueError(f"cross_soundfont.standardize: {bad[0]!r} is not none or per_soundfont")
    for model, how, train, test in itertools.product(models, standardize, soundfonts,
                                                     soundfonts):
        if how != "none" and train == test:
            continue  # within one soundfont the models standardise anyway: same as none
        yield model, how, train, test


def protocol_scores(predictions: pd.DataFrame, labels: pd.DataFrame, groups: dict[str, str],
                    n_resamples: int) -> dict:
    """R², Pearson r (with passage-group bootstrap CIs) and n of one protocol's predictions."""
    s = stack_predictions(predictions, labels)
    sc = score_protocol(s.y_true, s.y_pred, s.passages, clusters=[groups[g] for g in s.segments],
                        n_resamples=n_resamples, seed=0)
    return {k: sc[k] for k in ("r2", "r2_ci", "pearson_r", "pearson_r_ci", "n")}


def cross_soundfont_report(params: dict, tables: dict[str, tuple[pd.DataFrame, list[str]]],
                           labels: pd.DataFrame, splits: pd.DataFrame) -> dict:
    """metrics/audio_cross_soundfont.json: one scored row in ``pairs`` per run of the check
    (none when under two soundfonts). ``params`` is the train_audio section, ``tables``
    ``{soundfont: (labelled embeddings, feature columns)}``."""
    cross = params["cross_soundfont"]
    report = {"encoder": params["encoder"], "protocols": cross["protocols"], "note": CROSS_NOTE,
              "pairs": []}
    if len(tables) < 2:
        return report
    frames = on_common_segments({sf: t for sf, (t, _) in tables.items()})
    tables = {sf: (frames[sf], cols) for sf, (_, cols) in tables.items()}
    groups = dict(zip(splits["segment"], splits["group"]))
    # piece_cv and piece_test come from one fit of the split "piece"
    split_names = tuple(dict.fromkeys(p.rsplit("_", 1)[0] for p in cross["protocols"]))
    runs = list(cross_pairs(cross["models"], cross["standardize"], list(tables)))
    with Progress("train_audio cross-soundfont", len(runs), "runs") as progress:
        for model, how, train_sf, test_sf in runs:
            (train, cols), (test, _) = tables[train_sf], tables[test_sf]
            if how == "per_soundfont":
                train = standardize_per_domain(train, cols)
                test = standardize_per_domain(test, cols)
            predictions, _ = cross_fit_audio(model, params, train, cols, splits, split_names,
                                             predict_data=test, piece_seeds=1)
            predictions = {re.sub(r"^piece_s\d+_", "piece_", k): v for k, v in predictions.items()}
            row = {"model": model, "standardize": how, "train": train_sf, "test": test_sf}
            for protocol in cross["protocols"]:
                row[protocol] = protocol_scores(predictions[protocol], labels, groups,
                                                int(cross["n_resamples"]))
            report["pairs"].append(row)
            log.info("cross-soundfont %s (%s): train %s -> test %s: R² %s", model, how, train_sf,
                     test_sf, {p: row[p]["r2"] for p in cross["protocols"]})
            progress.update()
    return report
