"""Named subsets of the feature table's columns, so a model can be trained on less than all."""
from __future__ import annotations

from pianoeval.features.symbolic import PERFORMANCE_FEATURES

FEATURE_SETS = ("all", "performance_only")


def feature_set(columns: list[str], name: str) -> list[str]:
    """The columns of set ``name``, in ``columns`` order: ``all``, or ``performance_only`` (what
    a performance defines without its score: no ``score_*`` or ``align_*`` feature)."""
    if name == "all":
        return list(columns)
    if name == "performance_only":
        return [c for c in columns if c in PERFORMANCE_FEATURES]
    raise ValueError(f"unknown feature set {name!r} (have: {', '.join(FEATURE_SETS)})")
