"""DVC stage `splits`: music groups and every protocol -> data/splits.csv (git-tracked),
counts -> metrics/splits.json. Groups need each segment's notes (data/raw/percepiano/midi)."""
import argparse
import json
from pathlib import Path

import pandas as pd

from pianoeval.config import load_config
from pianoeval.data.midi import MidiError, read_midi
from pianoeval.data.segments import parse_segment
from pianoeval.data.splits import make_splits, music_groups
from pianoeval.logs import setup_logging


def main() -> None:
    log = setup_logging("splits")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--labels", default="data/labels.csv", help="CSV with a `segment` column")
    ap.add_argument("--midi-dir", default="data/raw/percepiano/midi",
                    help="<segment>.mid files (names compared with whitespace stripped)")
    ap.add_argument("--out", default="data/splits.csv")
    ap.add_argument("--metrics", default="metrics/splits.json")
    args = ap.parse_args()
    config = load_config("splits")
    names = pd.read_csv(args.labels, usecols=["segment"], dtype=str)["segment"].str.strip().tolist()
    paths = {p.stem.strip(): p for p in Path(args.midi_dir).glob("*.mid")}
    notes, unreadable = {}, []
    for name in names:
        try:
            notes[name] = read_midi(paths.get(name, Path(args.midi_dir) / f"{name}.mid")).notes
        except MidiError as exc:
            unreadable.append(name)
            log.warning("grouped by passage only: %s", exc)
    groups = music_groups(names, notes, config.min_overlap)
    splits = make_splits(names, groups, config.seeds, config.test_fraction, config.n_folds)
    splits.to_csv(args.out, index=False)
    passages = pd.Series([parse_segment(n).passage for n in splits["segment"]])
    n_passages = passages.groupby(splits["group"]).nunique()
    metrics = {col: splits[col].value_counts().sort_index().to_dict()
               for col in splits.columns if col.endswith("_split") or "_split_s" in col}
    metrics.update(n_segments=len(splits), n_groups=int(splits["group"].nunique()),
                   n_passages=int(passages.nunique()), unreadable_midi=len(unreadable),
                   segments_joined_across_passages=int(
                       splits["group"].map(n_passages).gt(1).sum()))
    Path(args.metrics).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log.info("%d segments, %d groups (%d segments joined across passages by content), "
             "%d unreadable MIDI", metrics["n_segments"], metrics["n_groups"],
             metrics["segments_joined_across_passages"], len(unreadable))


if __name__ == "__main__":
    main()
