"""PercePiano expert labels: the published means, and their recomputation from every rating."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.data.dimensions import DIMENSIONS, N_DIMS


def load_published_labels(path: str | Path) -> pd.DataFrame:
    """The label json: segment -> 19 means on 0..1, then a performer index (dropped)."""
    with open(path) as fh:
        raw = json.load(fh)
    bad = [k for k, v in raw.items() if len(v) != N_DIMS + 1]
    if bad:
        raise ValueError(f"{path}: {len(bad)} entries without {N_DIMS + 1} values, e.g. {bad[0]!r}")
    frame = pd.DataFrame([v[:N_DIMS] for v in raw.values()], columns=list(DIMENSIONS))
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(float)
    invalid = ~((values >= 0.0) & (values <= 1.0))  # NaN, inf, a string, outside 0..1
    if invalid.any():
        row, col = np.argwhere(invalid)[0]
        raise ValueError(f"{path}: {int(invalid.any(axis=1).sum())} entries with a label that is "
                         f"not a number in 0..1, e.g. {list(raw)[row]!r} {DIMENSIONS[col]} = "
                         f"{list(raw.values())[row][col]!r}")
    frame.insert(0, "segment", [k.strip() for k in raw])
    return frame.sort_values("segment", ignore_index=True)


_SCORE2_BEETHOVEN = re.compile(r"^(Beethoven_WoO80_.*)_Score_(\d+)$")
_SCORE2_SCHUBERT = re.compile(r"^(Schubert_D935_no\.3_4bars)_Score_(1)$")


def rating_segment_name(filename: str, merge_score2: bool = False) -> str:
    """Segment name of a rating row, by the upstream rule (see the mirror README).

    Drop the extension, ``_score`` -> ``_Score``. With ``merge_score2`` the Beethoven WoO80
    ``Score`` segments 5..16 and the Schubert no.3 4-bar ``Score`` segment 1 are renamed to the
    second rendering, ``Score2``, pooling the ratings of both renderings: that reproduces the older
    1,189-segment file exactly. The 1,202-segment file keeps the two renderings apart (no rename);
    measured: both reproduce to 0.0 max difference.
    """
    name = Path(filename.strip()).stem.replace("_score", "_Score")
    if not merge_score2:
        return name
    m = _SCORE2_BEETHOVEN.match(name)
    if m and 5 <= int(m[2]) <= 16:
        return f"{m[1]}_Score2_{m[2]}"
    m = _SCORE2_SCHUBERT.match(name)
    if m:
        return f"{m[1]}_Score2_{m[2]}"
    return name


def recompute_labels(ratings: pd.DataFrame, max_rating: float = 7.1, likert_max: float = 7.0,
                     merge_score2: bool = False) -> pd.DataFrame:
    """Means per segment and dimension from individual ratings, by the upstream rule.

    Answers are the columns between ``filename`` and the last two; empty -> 0; a row with any
    answer above ``max_rating`` is dropped; zeros are dropped, the rest averaged and divided by
    ``likert_max``; a segment is kept only if every dimension has a non-zero answer.
    Returns ``segment``, ``n_raters`` (rows kept), the 19 dimensions.
    """
    cols = list(ratings.columns)
    answers = cols[cols.index("filename") + 1 : -2]
    if len(answers) != N_DIMS:
        raise ValueError(f"expected {N_DIMS} answer columns after 'filename', found {len(answers)}")
    values = ratings[answers].apply(pd.to_numeric, errors="coerce").fillna(0.0).to_numpy(float)
    keep = ~(values > max_rating).any(axis=1)
    segments = ratings["filename"].astype(str).map(lambda f: rating_segment_name(f, merge_score2)).to_numpy()[keep]
    values = values[keep]

    frame = pd.DataFrame(np.where(values > 0, values, np.nan), columns=list(DIMENSIONS))
    frame.insert(0, "segment", segments)
    grouped = frame.groupby("segment", sort=True)
    means = grouped[list(DIMENSIONS)].mean() / likert_max
    means.insert(0, "n_raters", grouped.size())
    means = means[means[list(DIMENSIONS)].notna().all(axis=1)]
    return means.reset_index()


def compare_labels(published: pd.DataFrame, recomputed: pd.DataFrame, tolerance: float) -> dict:
    """Agreement of published and recomputed means on the segments both have."""
    merged = published.merge(recomputed, on="segment", suffixes=("", "_re"))
    diff = np.abs(merged[list(DIMENSIONS)].to_numpy()
                  - merged[[f"{d}_re" for d in DIMENSIONS]].to_numpy())
    worst = np.where(np.isnan(diff).any(axis=1), np.inf, diff.max(axis=1, initial=0.0))
    return {
        "n_published": len(published),
        "n_recomputed": len(recomputed),
        "n_compared": len(merged),
        "missing_from_ratings": sorted(set(published.segment) - set(recomputed.segment)),
        "max_abs_diff": float(diff.max()) if len(diff) else None,
        "n_mismatch": int((worst > tolerance).sum()),
        "mismatched": merged.segment[worst > tolerance].tolist()[:20],
    }
