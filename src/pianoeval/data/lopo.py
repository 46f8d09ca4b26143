"""Leave one performer out (``lopo``, the report's primary protocol): one fold per performer
group, every segment held out exactly once, no test set. Computed in memory from the segment
names (``with_lopo``); data/splits.csv keeps its three stored splits, so the stages that read
it are unaffected.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pianoeval.data.segments import parse_segment
from pianoeval.data.splits import SPLIT_COLUMNS, performer_index

LOPO_COLUMN = "lopo_split"
SPLIT_COLUMNS_WITH_LOPO = {**SPLIT_COLUMNS, "lopo": LOPO_COLUMN}


def lopo_group(name: str) -> int:
    """Performer group key of a segment: ``performer_index`` for a pianist, -1 for both score
    renderings (``Score`` and ``Score2``).

    Both renderings are the same deadpan rendition of the score, not a pianist, so they form one
    group. They are keyed by name rather than by index because ``performer_index`` gives
    ``Score`` the index 0, which it shares with a real pianist (Schubert ``0`` / Beethoven ``1``).
    """
    if parse_segment(name).performer in ("Score", "Score2"):
        return -1
    return performer_index(name)


def lopo_split(names: list[str]) -> list[str]:
    """Fold = rank of ``lopo_group(name)`` among the groups present, ``"0"``..``"G-1"`` in sorted
    group order (the score renderings, if present, are ``"0"``)."""
    groups = [lopo_group(n) for n in names]
    fold_of = {g: str(k) for k, g in enumerate(sorted(set(groups)))}
    return [fold_of[g] for g in groups]


def with_lopo(splits: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``splits`` with a ``lopo_split`` column computed from ``splits["segment"]``."""
    if "segment" not in splits.columns:
        raise ValueError(f"splits lack a 'segment' column (have: {list(splits.columns)})")
    out = splits.copy()
    out[LOPO_COLUMN] = lopo_split(out["segment"].astype(str).tolist())
    return out


def lopo_fold_masks(values: pd.Series):
    """Yield (k, train, held_out, test) like ``splits.fold_masks``, one fold per group: every
    segment outside group k trains, group k is held out, the test mask is empty."""
    values = values.astype(str)
    n_groups = values.nunique()
    if set(values) != {str(k) for k in range(n_groups)}:
        raise ValueError(f"lopo fold values must be '0'..'{n_groups - 1}', got {sorted(set(values))[:5]}")
    for k in range(n_groups):
        held_out = (values == str(k)).to_numpy()
        yield k, ~held_out, held_out, np.zeros(len(values), bool)
