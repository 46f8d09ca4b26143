"""Write and read the prediction files the evaluate stage scores, and refuse stale ones.

``metrics/predictions/<model>/<split>_<kind>.csv``: ``kind`` is ``cv`` (out-of-fold) or
``test``; ``split`` is ``performer``, ``work``, ``lopo`` or ``piece_s<seed>`` (one piece split per
seed of ``splits.seeds``), whose column ``<split>_split`` / ``piece_split_s<seed>`` is in
data/splits.csv. A file whose segments or folds disagree with that column was made on another
split: it is an error, never scored.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from pianoeval.data.splits import TEST, TRAIN_ONLY, split_columns

log = logging.getLogger(__name__)

FILE = re.compile(r"^(?P<split>piece_s\d+|performer|work|lopo)_(?P<kind>cv|test)$")


def write_predictions(folder: Path, frames: Mapping[str, pd.DataFrame]) -> None:
    """Write one model's predictions as ``folder/<protocol>.csv`` with 6 decimals, the layout
    :func:`load_predictions` reads. CSV files of an earlier run that this one did not write are
    removed, so the folder holds exactly ``frames``' protocols."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        if old.stem not in frames:
            old.unlink()
    for protocol, frame in frames.items():
        frame.to_csv(folder / f"{protocol}.csv", index=False, float_format="%.6f")


def check_against_splits(pred: pd.DataFrame, splits: pd.DataFrame, protocol: str, where: str) -> None:
    """ValueError naming ``where`` when ``pred`` was not made on data/splits.csv's folds:
    a cv file must give each segment its fold of the split column, a test file may hold only
    test segments. Segments a model could not predict may be missing."""
    m = FILE.match(protocol)
    if m is None:
        raise ValueError(f"{where}: not a protocol file name ({protocol})")
    try:
        column = split_columns(splits, [m["split"]])[m["split"]]
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    fold_of = splits.set_index("segment")[column].astype(str)
    unknown = sorted(set(pred["segment"]) - set(fold_of.index))
    if unknown:
        raise ValueError(f"{where}: {len(unknown)} segments not in data/splits.csv, e.g. {unknown[:3]}")
    folds = fold_of.loc[pred["segment"]].to_numpy()
    if m["kind"] == "test":
        wrong = (folds != TEST).sum()
    else:
        wrong = ((folds == TEST) | (folds == TRAIN_ONLY) | (folds != pred["fold"].astype(str).to_numpy())).sum()
    if wrong:
        raise ValueError(f"{where}: {wrong} rows disagree with data/splits.csv column {column}: "
                         "made on another split; rerun the stage that wrote it")


def load_predictions(folder: Path, models: Sequence[str], protocols: Sequence[str],
                     splits: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """``{model: {file protocol: frame}}`` for the files of ``protocols`` that exist (``piece_cv``
    and ``piece_test`` gather every seed's ``piece_s<seed>_*``), each checked against ``splits``."""
    piece = list(split_columns(splits, ["piece"])) if any(
        p.startswith("piece_") for p in protocols) else []
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for model in models:
        for protocol in protocols:
            split, kind = protocol.rsplit("_", 1)
            names = [f"{s}_{kind}" for s in piece] if split == "piece" else [protocol]
            for name in names:
                path = Path(folder) / model / f"{name}.csv"
                if not path.exists():
                    log.info("skip %s/%s: no %s", model, name, path)
                    continue
                frame = pd.read_csv(path)
                check_against_splits(frame, splits, name, str(path))
                out.setdefault(model, {})[name] = frame
    return out
