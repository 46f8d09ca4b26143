"""PercePiano segment names: ``<piece>_<N>bars_<performer>_<segment>``.

Examples: ``Schubert_D960_mv2_8bars_3_12``, ``Beethoven_WoO80_var15_8bars_Score2_10``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^(?P<piece>.+)_(?P<bars>\d+)bars_(?P<performer>Score2|Score|\d+)_(?P<index>\d+)$")

# A work is the composition a piece belongs to: every Beethoven WoO80 variation is one work,
# because the variations share the theme's harmony and phrase plan.
_WORK = re.compile(r"^(Beethoven_WoO80|Schubert_D935_no\.3|Schubert_D960_mv2|Schubert_D960_mv3)")


@dataclass(frozen=True)
class Segment:
    piece: str  # e.g. Schubert_D960_mv2
    bars: int  # passage length in bars
    performer: str  # a number, "Score" or "Score2"
    index: int  # segment index within the piece

    @property
    def passage(self) -> str:
        """All performers of the same music share a passage id."""
        return f"{self.piece}_{self.bars}bars_{self.index}"

    @property
    def work(self) -> str:
        m = _WORK.match(self.piece)
        return m.group(1) if m else self.piece

    @property
    def score_name(self) -> str:
        """Name of the score rendering of this passage in ``score_midi/`` (without extension)."""
        return f"{self.piece}_{self.bars}bars_Score_{self.index}"


def parse_segment(name: str) -> Segment:
    """Parse a segment name (file stem, surrounding spaces ignored); ValueError names the input."""
    m = _NAME.match(name.strip())
    if m is None:
        raise ValueError(f"not a PercePiano segment name: {name!r}")
    return Segment(m["piece"], int(m["bars"]), m["performer"], int(m["index"]))


def score_paths(score_dir, pattern: str = "*.mid") -> dict[str, "Path"]:
    """Map passage id -> score path in ``score_dir`` (``Score`` preferred over ``Score2``);
    ``pattern`` picks the files (``*.musicxml`` for the MusicXML scores).

    Score file indices are zero-padded in places (``_Score_01``), so files are matched by the
    parsed passage id, never by string concatenation.
    """
    from pathlib import Path

    found: dict[str, Path] = {}
    for path in sorted(Path(score_dir).glob(pattern)):
        if not _NAME.match(path.stem):  # e.g. the whole-piece beethoven_woo80_score2.mid
            continue
        seg = parse_segment(path.stem)
        if seg.performer == "Score" or seg.passage not in found:
            found[seg.passage] = path
    return found
