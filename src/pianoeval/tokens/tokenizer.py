"""Performance notes <-> MidiTok tokens (compound-word CPWord by default, REMI by a switch).

A performance MIDI has no meaningful bars or beats: its times are seconds. It is tokenised on a
fixed reference grid, ``tempo_bpm`` beats per minute in 4/4, so a time position is
``beats = seconds * tempo_bpm / 60`` quantised to the tokenizer's ``beat_res``; at 120 bpm and
16 positions per beat the grid step is 31.25 ms. Sustain pedal is not tokenised (CPWord has no
pedal tokens); note durations carry what the fingers held.

Token ids are always returned as a 2-D int array ``(n_tokens, n_fields)``: CPWord has one field
per sub-vocabulary (family, bar/position, pitch, velocity, duration), REMI has one field.
"""
from __future__ import annotations

from pathlib import Path

import miditok
import numpy as np
import symusic

from pianoeval.data.midi import NOTE_DTYPE, Performance

KINDS = {"cpword": miditok.CPWord, "remi": miditok.REMI}
TPQ = 480  # ticks per beat of the reference grid (finer than any beat_res)


def make_tokenizer(cfg: dict) -> miditok.MusicTokenizer:
    """A MidiTok tokenizer from the ``tokenize.tokenizer`` params (``kind``: cpword | remi;
    ``beat_res``: {"0-4": 16, ...}, positions per beat for durations in that range of beats)."""
    kind = cfg["kind"].lower()
    if kind not in KINDS:
        raise ValueError(f"tokenizer kind {cfg['kind']!r} unknown (have: {sorted(KINDS)})")
    beat_res = {tuple(int(x) for x in str(k).split("-")): int(v) for k, v in cfg["beat_res"].items()}
    config = miditok.TokenizerConfig(
        pitch_range=(21, 109), beat_res=beat_res, num_velocities=int(cfg["num_velocities"]),
        special_tokens=["PAD", "MASK"], use_velocities=True, use_tempos=False,
        use_time_signatures=False, use_programs=False, use_sustain_pedals=False,
        use_pitchdrum_tokens=False, remove_duplicated_notes=False)
    return KINDS[kind](config)


def load_tokenizer(path: str | Path) -> miditok.MusicTokenizer:
    """The tokenizer saved by the tokenize stage (its class is recorded in the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tokenizer file (run the tokenize stage)")
    import json
    kind = json.loads(path.read_text())["tokenization"]
    return getattr(miditok, kind)(params=path)


def vocab_sizes(tokenizer: miditok.MusicTokenizer) -> list[int]:
    """Size of every field's vocabulary (one entry for REMI)."""
    if tokenizer.is_multi_voc:
        return [len(v) for v in tokenizer.vocab]
    return [len(tokenizer.vocab)]


def special_ids(tokenizer: miditok.MusicTokenizer) -> dict[str, int]:
    """Ids of PAD and MASK: the same in every field (they are the first tokens of each)."""
    vocab = tokenizer.vocab[0] if tokenizer.is_multi_voc else tokenizer.vocab
    return {"pad": vocab["PAD_None"], "mask": vocab["MASK_None"]}


def performance_to_score(perf: Performance, tempo_bpm: float) -> symusic.Score:
    """One piano track on the reference grid: tick = round(seconds * tempo_bpm / 60 * TPQ)."""
    scale = tempo_bpm / 60.0 * TPQ
    notes = perf.notes
    start = np.rint(notes["onset_sec"] * scale).astype(np.int32)
    end = np.rint((notes["onset_sec"] + notes["duration_sec"]) * scale).astype(np.int32)
    score = symusic.Score(TPQ)
    score.tempos.append(symusic.Tempo(0, tempo_bpm))
    track = symusic.Track("piano", 0, False)
    track.notes = symusic.Note.from_numpy(
        time=start, duration=np.maximum(end - start, 1).astype(np.int32),
        pitch=notes["pitch"].astype(np.int8), velocity=notes["velocity"].astype(np.int8))
    score.tracks.append(track)
    return score


def encode(tokenizer: miditok.MusicTokenizer, perf: Performance, tempo_bpm: float) -> np.ndarray:
    """Token ids ``(n_tokens, n_fields)`` of a performance (empty performance: 0 rows)."""
    n_fields = len(vocab_sizes(tokenizer))
    if len(perf.notes) == 0:
        return np.zeros((0, n_fields), np.int64)
    seq = tokenizer.encode(performance_to_score(perf, tempo_bpm))
    if isinstance(seq, list):  # one sequence per track; there is one track
        seq = seq[0]
    return np.asarray(seq.ids, dtype=np.int64).reshape(-1, n_fields)


def decode(tokenizer: miditok.MusicTokenizer, ids: np.ndarray, tempo_bpm: float) -> Performance:
    """Notes back from token ids, times in seconds on the reference grid."""
    ids = np.asarray(ids)
    seq = miditok.TokSequence(ids=ids.tolist() if tokenizer.is_multi_voc else ids[:, 0].tolist())
    score = tokenizer.decode([seq])  # one track
    scale = 60.0 / tempo_bpm / score.ticks_per_quarter
    parts = []
    for track in score.tracks:
        n = track.notes.numpy()
        part = np.empty(len(n["time"]), NOTE_DTYPE)
        part["onset_sec"], part["duration_sec"] = n["time"] * scale, n["duration"] * scale
        part["pitch"], part["velocity"] = n["pitch"], n["velocity"]
        parts.append(part)
    notes = np.concatenate(parts) if parts else np.empty(0, NOTE_DTYPE)
    notes = notes[np.lexsort((notes["pitch"], notes["onset_sec"]))]
    return Performance(notes, np.empty(0, dtype=[("time_sec", "f8"), ("number", "i4"), ("value", "i4")]))


def chunk(ids: np.ndarray, max_len: int, min_len: int = 1) -> list[np.ndarray]:
    """Consecutive, non-overlapping pieces of at most ``max_len`` tokens; a last piece shorter
    than ``min_len`` is dropped (too little context to learn from)."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    pieces = [ids[i:i + max_len] for i in range(0, len(ids), max_len)]
    return [p for p in pieces if len(p) >= min_len]
