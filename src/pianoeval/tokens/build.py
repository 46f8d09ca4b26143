"""The tokenize stage's outputs: tokenised corpus files, PercePiano segments, leak check, counts.

Only the tokenize stage imports this module (the tokenizer and corpus selection live in
``tokenizer.py`` and ``corpus.py``; pre-training and fine-tuning read the files written here).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import miditok
import numpy as np
import pandas as pd
from tqdm import tqdm

from pianoeval.data.midi import NOTE_DTYPE, MidiError, read_midi
from pianoeval.tokens.corpus import corpus_table, giantmidi_works, ngram_overlap
from pianoeval.tokens.tokenizer import chunk, encode, vocab_sizes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusTokens:
    """The tokenised corpus: ``files`` (one row per kept corpus file: the corpus table's
    columns, ``heldout``, ``status`` ok | corrupt, ``n_tokens``, ``n_sequences``), each file's
    notes (empty when corrupt), and the chunked sequences with the ``files`` row of each."""

    files: pd.DataFrame
    notes: list[np.ndarray]
    sequences: list[np.ndarray]
    sequence_file: list[int]


@dataclass(frozen=True)
class SegmentTokens:
    """Token ids and pitch sequences of PercePiano segments, in ``names`` order."""

    names: list[str]
    ids: list[np.ndarray]
    pitch: list[np.ndarray]


def read_corpus_table(raw: Path, giantmidi_roles: list[str],
                      exclude_works: list[str]) -> pd.DataFrame:
    """``corpus_table`` of the ingest manifests ``raw/{maestro,giantmidi}/manifest.csv``, with
    GiantMIDI's works from its ground-truth table when ``raw/giantmidi`` has one."""
    mapping = raw / "giantmidi" / "groundtruth_maestro_giantmidi-piano.csv"
    giant_map = giantmidi_works(pd.read_csv(mapping, sep="\t")) if mapping.is_file() else {}
    return corpus_table(pd.read_csv(raw / "maestro" / "manifest.csv"),
                        pd.read_csv(raw / "giantmidi" / "manifest.csv"), giant_map,
                        giantmidi_roles, exclude_works)


def save_tokenizer(tokenizer: miditok.MusicTokenizer, path: Path) -> None:
    """Write the tokenizer's vocabulary and settings to ``path``; raise ValueError first when a
    vocabulary has 32,768 tokens or more (the id files store int16)."""
    if max(vocab_sizes(tokenizer)) >= 2**15:
        raise ValueError("a vocabulary of 32,768 tokens or more does not fit the int16 id files")
    tokenizer.save(path)


def tokenize_corpus(table: pd.DataFrame, heldout: set[str], raw: Path,
                    tokenizer: miditok.MusicTokenizer, tempo_bpm: float, max_len: int,
                    min_len: int) -> CorpusTokens:
    """Read and tokenise every file of ``table`` that is not excluded (``raw/<source>/<file>``)
    and chunk its tokens (see ``chunk``); a file that cannot be read or encoded is logged and
    kept as ``corrupt`` with no notes."""
    start = time.perf_counter()
    files = table[table["excluded"] == ""].reset_index(drop=True)
    files["heldout"] = files["work"].isin(heldout)
    status, n_tokens, n_seqs, notes, sequences, sequence_file = [], [], [], [], [], []
    for i, (source, file) in tqdm(list(enumerate(zip(files["source"], files["file"]))),
                                 desc="tokenize corpus", mininterval=10):
        path = raw / source / file
        try:
            perf = read_midi(path)
            ids = encode(tokenizer, perf, tempo_bpm)
        except (MidiError, ValueError, RuntimeError) as exc:  # counted and skipped, never fatal
            log.warning("skipping %s: %s", path, exc)
            status.append("corrupt"), n_tokens.append(0), n_seqs.append(0)
            notes.append(np.empty(0, NOTE_DTYPE))
            continue
        pieces = chunk(ids, max_len, min_len)
        status.append("ok"), n_tokens.append(len(ids)), n_seqs.append(len(pieces))
        notes.append(perf.notes)
        sequences += pieces
        sequence_file += [i] * len(pieces)
    files["n_notes"] = [len(n) for n in notes]
    files["status"], files["n_tokens"], files["n_sequences"] = status, n_tokens, n_seqs
    seconds = time.perf_counter() - start
    log.info("tokenised %d files (%d corrupt) in %.0f s: %.1f files/s, %.0f notes/s", len(files),
             status.count("corrupt"), seconds, len(files) / seconds, files["n_notes"].sum() / seconds)
    return CorpusTokens(files, notes, sequences, sequence_file)


def _offsets(parts: list[np.ndarray]) -> np.ndarray:
    """Start of every part in their concatenation, and the total length at the end."""
    return np.concatenate([[0], np.cumsum([len(p) for p in parts])])


def corpus_arrays(corpus: CorpusTokens) -> dict[str, np.ndarray]:
    """``corpus.npz``: every file's notes concatenated, file ``i`` at ``offsets[i]:offsets[i+1]``."""
    return {"notes": np.concatenate(corpus.notes), "offsets": _offsets(corpus.notes)}


def sequence_arrays(corpus: CorpusTokens) -> dict[str, np.ndarray]:
    """``sequences.npz``: int16 ids of every sequence concatenated, their offsets, and each
    sequence's ``files`` row and held-out flag."""
    # int16 ids: every vocabulary is far below 32,767 tokens, and the file is 4x smaller
    return {"ids": np.concatenate(corpus.sequences).astype(np.int16),
            "offsets": _offsets(corpus.sequences), "file_index": np.array(corpus.sequence_file),
            "heldout": corpus.files["heldout"].to_numpy()[np.array(corpus.sequence_file, dtype=int)]}


def tokenize_segments(names: list[str], midi_dir: Path, tokenizer: miditok.MusicTokenizer,
                      tempo_bpm: float) -> SegmentTokens:
    """Token ids and pitches of ``midi_dir/<name>.mid`` for every name (an unreadable file
    raises: the fine-tuning data must be complete)."""
    ids, pitch = [], []
    for name in tqdm(names, desc="tokenize percepiano", mininterval=10):
        perf = read_midi(midi_dir / f"{name}.mid")
        ids.append(encode(tokenizer, perf, tempo_bpm))
        pitch.append(perf.notes["pitch"])
    return SegmentTokens(list(names), ids, pitch)


def segment_arrays(segments: SegmentTokens) -> dict[str, np.ndarray]:
    """``percepiano.npz``: segment names, their int16 ids concatenated, and offsets."""
    return {"segments": np.array(segments.names),
            "ids": np.concatenate(segments.ids).astype(np.int16), "offsets": _offsets(segments.ids)}


def excluded_table(table: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """What was kept out of the corpus (``kind``, ``name``, ``reason``): the PercePiano test
    segments, then the excluded corpus files as ``<source>/<file>``."""
    dropped = table[table["excluded"] != ""]
    return pd.concat([
        pd.DataFrame({"kind": "percepiano_test_segment", "name": tests["segment"],
                      "reason": "test set of " + tests["protocols"]}),
        pd.DataFrame({"kind": "corpus_file", "name": dropped["source"] + "/" + dropped["file"],
                      "reason": dropped["excluded"]})], ignore_index=True)


def excluded_pitch(table: pd.DataFrame, raw: Path) -> list[np.ndarray]:
    """Pitch sequences of the excluded corpus files (``raw/<source>/<file>``)."""
    dropped = table[table["excluded"] != ""]
    return [read_midi(raw / s / f).notes["pitch"] for s, f in zip(dropped["source"], dropped["file"])]


def leak_check(corpus: CorpusTokens, segments: SegmentTokens, tests: pd.DataFrame,
               dropped: list[np.ndarray], n: int) -> dict:
    """Mean and max share of each test segment's ``n``-note pitch windows (see
    ``ngram_overlap``) found in the corpus files and in the ``dropped`` (excluded) files."""
    is_test = np.isin(segments.names, tests["segment"])
    test = [pitch for pitch, t in zip(segments.pitch, is_test) if t]
    overlap = ngram_overlap([notes["pitch"] for notes in corpus.notes], test, n)
    overlap_dropped = ngram_overlap(dropped, test, n) if dropped else np.zeros(len(test))
    return {"ngram": n,
            "test_overlap_with_corpus_mean": round(float(overlap.mean()), 4),
            "test_overlap_with_corpus_max": round(float(overlap.max()), 4),
            "test_overlap_with_excluded_files_mean": round(float(overlap_dropped.mean()), 4),
            "test_overlap_with_excluded_files_max": round(float(overlap_dropped.max()), 4)}


def corpus_counts(corpus: CorpusTokens, table: pd.DataFrame, tests: pd.DataFrame,
                  segments: SegmentTokens, tokenizer: miditok.MusicTokenizer, tokenizer_kind: str,
                  max_len: int, leak: dict) -> dict:
    """``counts.json``: files, works, notes, tokens and sequences of the corpus (in all, train,
    held out, by source), what was excluded, the PercePiano segments, and the leak check."""
    ok = corpus.files[corpus.files["status"] == "ok"]
    train, held = ok[~ok["heldout"]], ok[ok["heldout"]]
    return {
        "tokenizer": tokenizer_kind, "vocab_sizes": vocab_sizes(tokenizer),
        "files": int(len(ok)), "files_corrupt": int((corpus.files["status"] == "corrupt").sum()),
        "files_excluded_percepiano_works": int((table["excluded"] != "").sum()),
        "percepiano_test_segments_excluded": int(len(tests)),
        "works": int(ok["work"].nunique()), "heldout_works": int(held["work"].nunique()),
        "notes": int(ok["n_notes"].sum()), "tokens": int(ok["n_tokens"].sum()),
        "sequences": int(len(corpus.sequences)), "max_len": int(max_len),
        **{name: {"files": int(len(part)), "tokens": int(part["n_tokens"].sum()),
                  "sequences": int(part["n_sequences"].sum())}
           for name, part in (("train", train), ("heldout", held))},
        "by_source": {s: {"files": int(len(g)), "tokens": int(g["n_tokens"].sum())}
                      for s, g in ok.groupby("source")},
        "percepiano_segments": {"segments": len(segments.names),
                                "tokens": int(sum(len(s) for s in segments.ids)),
                                "longer_than_max_len": int(sum(len(s) > max_len for s in segments.ids))},
        "leak_check": leak,
    }
