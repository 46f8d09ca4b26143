"""Segment-level summaries of the note deviations (``align_*``), their merge into the feature
table, and the alignment metrics (deterministic: no timings)."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ALIGNED = ("ok", "low_match")  # statuses whose alignment is used

SEGMENT_FEATURES = (
    "align_match_rate", "align_insertion_rate", "align_deletion_rate",
    "align_onset_dev_ms_mean", "align_onset_dev_ms_std", "align_onset_dev_ms_iqr",
    "align_onset_dev_beats_std", "align_chord_spread_ms_mean",
    "align_log_tempo_std", "align_log_tempo_p90_p10",
    "align_velocity_rel_local_std", "align_velocity_rel_phrase_std",
    "align_articulation_ratio_median", "align_articulation_ratio_iqr",
    "align_legato_overlap_sec_median", "align_sustain_cc_mean", "align_soft_cc_mean",
)


def _finite(x) -> np.ndarray:
    x = np.asarray(x, float)
    return x[np.isfinite(x)]


def _stat(x, fn, min_n: int = 1) -> float:
    x = _finite(x)
    return float(fn(x)) if len(x) >= min_n else math.nan


def _iqr(x) -> float:
    return _stat(x, lambda v: np.subtract(*np.percentile(v, [75, 25])))


def segment_features(notes: pd.DataFrame, n_inserted: int, n_deleted: int, n_score: int,
                     status: str) -> dict[str, float]:
    """``align_*`` summaries of one segment's note rows (NOTE_COLUMNS).

    * rates: match = matched / score notes, insertion = inserted / performed notes,
      deletion = deleted / score notes;
    * onset deviation (matched notes): mean, std, IQR in ms; std in beats;
    * chord spread: per score onset with >= 2 matched notes, max - min performed onset (ms),
      averaged (melody lead and rolled chords);
    * tempo, one value per score onset: std of ln(local_tempo_ratio) and ln(p90 / p10);
    * velocity_rel_local / _phrase std (all performed notes); articulation ratio median and
      IQR, legato overlap median (matched notes); mean CC64 / CC67 value at note onsets.

    Every score-derived value is NaN unless the status is ``ok`` or ``low_match``; the pedal
    values need no score. Standard deviations use ddof=0.
    """
    f = dict.fromkeys(SEGMENT_FEATURES, math.nan)
    n_perf = len(notes)
    if n_perf:
        f["align_sustain_cc_mean"] = float(notes["sustain_cc"].mean())
        f["align_soft_cc_mean"] = float(notes["soft_cc"].mean())
    if status not in ALIGNED or n_perf == 0 or n_score == 0:
        return f
    m = notes[notes["matched"] == 1]
    f["align_match_rate"] = len(m) / n_score
    f["align_insertion_rate"] = n_inserted / n_perf
    f["align_deletion_rate"] = n_deleted / n_score
    f["align_onset_dev_ms_mean"] = _stat(m["onset_dev_ms"], np.mean)
    f["align_onset_dev_ms_std"] = _stat(m["onset_dev_ms"], np.std)
    f["align_onset_dev_ms_iqr"] = _iqr(m["onset_dev_ms"])
    f["align_onset_dev_beats_std"] = _stat(m["onset_dev_beats"], np.std)
    onsets = m.groupby("score_onset_beat")["onset_sec"]
    spread = (onsets.max() - onsets.min())[onsets.size() >= 2] * 1000.0
    f["align_chord_spread_ms_mean"] = _stat(spread, np.mean)
    tempo = _finite(m.groupby("score_onset_beat")["local_tempo_ratio"].first())
    tempo = np.log(tempo[tempo > 0])
    f["align_log_tempo_std"] = _stat(tempo, np.std)
    f["align_log_tempo_p90_p10"] = _stat(tempo, lambda v: np.subtract(*np.percentile(v, [90, 10])))
    f["align_velocity_rel_local_std"] = _stat(notes["velocity_rel_local"], np.std)
    f["align_velocity_rel_phrase_std"] = _stat(notes["velocity_rel_phrase"], np.std)
    f["align_articulation_ratio_median"] = _stat(m["articulation_ratio"], np.median)
    f["align_articulation_ratio_iqr"] = _iqr(m["articulation_ratio"])
    f["align_legato_overlap_sec_median"] = _stat(m["legato_overlap_sec"], np.median)
    return f


def merge_alignment_features(features: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """``features`` with the ``align_*`` columns of ``path`` (segment_features.csv) appended,
    merged on ``segment`` (NaN where a segment has none). A missing file leaves the table as it
    is, with a warning: the features stage also runs without the align stage (unit tests)."""
    path = Path(path)
    if not path.is_file():
        log.warning("%s not found: no align_* features", path)
        return features
    extra = pd.read_csv(path)
    extra = extra[["segment", *[c for c in extra.columns if c.startswith("align_")]]]
    merged = features.merge(extra, on="segment", how="left", validate="one_to_one")
    log.info("merged %d align_* features (%d of %d segments have them)", extra.shape[1] - 1,
             int(merged["segment"].isin(extra["segment"]).sum()), len(merged))
    return merged


def alignment_summary(alignments: pd.DataFrame, n_worst: int = 10) -> dict:
    """Deterministic summary of one source's alignments.csv: counts per status and matcher,
    match-rate median and minimum over aligned items (``ok``/``low_match``), the items that
    could not be aligned (failed, no score, unreadable; not the skipped ones), and the
    ``n_worst`` lowest rates."""
    aligned = alignments[alignments["status"].isin(ALIGNED)]
    rates = aligned["match_rate"].astype(float)
    worst = aligned.sort_values(["match_rate", "segment"]).head(n_worst)
    return {
        "n": int(len(alignments)),
        "n_status": {k: int(v) for k, v in sorted(alignments["status"].value_counts().items())},
        "n_matcher": {k: int(v) for k, v in sorted(aligned["matcher"].value_counts().items())},
        "match_rate_median": round(float(rates.median()), 4) if len(rates) else None,
        "match_rate_min": round(float(rates.min()), 4) if len(rates) else None,
        "insertion_rate_median": round(float(
            (aligned["n_inserted"] / (aligned["n_matched"] + aligned["n_inserted"])).median()), 4)
        if len(aligned) else None,
        "not_aligned": [{"segment": r.segment, "status": r.status} for r in alignments[
            alignments["status"].isin(("failed", "no_score", "unreadable"))].itertuples()],
        "worst": [{"segment": r.segment, "match_rate": round(float(r.match_rate), 4),
                   "matcher": r.matcher, "status": r.status} for r in worst.itertuples()],
    }
