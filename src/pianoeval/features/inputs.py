"""Which files the features stage reads: performances paired with their usable score."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pianoeval.data.segments import parse_segment, score_paths

log = logging.getLogger(__name__)


def build_items(manifest: pd.DataFrame, raw: Path) -> list[tuple[str, Path, Path | None]]:
    """(segment, performance path, score path or None) for every usable performance."""
    ok = manifest[manifest["status"] == "ok"]
    ok_scores = set(ok.loc[ok["role"] == "score", "file"])
    # A score rejected at ingest (e.g. no notes) must not be used even though it is on disk.
    scores = {passage: path for passage, path in score_paths(raw / "score_midi").items()
              if path.relative_to(raw).as_posix() in ok_scores}
    items, not_segments = [], []
    for file in sorted(ok.loc[ok["role"] == "performance", "file"]):
        segment = Path(file).stem.strip()
        try:
            passage = parse_segment(segment).passage
        except ValueError:  # e.g. a whole-piece rendering that ingest filed as a performance
            not_segments.append(file)
            continue
        items.append((segment, raw / file, scores.get(passage)))
    if not_segments:
        log.warning("ignored %d performance files that are not segments: %s",
                    len(not_segments), not_segments)
    n_without = sum(score is None for _, _, score in items)
    log.info("%d segments, %d scores, %d segments without a usable score",
             len(items), len(scores), n_without)
    return items
