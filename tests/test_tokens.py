"""Tokens: MidiTok round trip, chunking, the corpus and what is kept out of it."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from midi_factory import write_midi
from pianoeval.data.midi import read_midi
from pianoeval.tokens.corpus import (asap_work, corpus_table, giantmidi_works, heldout_works,
                                     ngram_overlap, percepiano_test_segments)
from pianoeval.tokens.tokenizer import (chunk, decode, encode, load_tokenizer, make_tokenizer,
                                        special_ids, vocab_sizes)

ROOT = Path(__file__).resolve().parents[1]
CFG = {"kind": "cpword", "tempo_bpm": 120.0, "beat_res": {"0-4": 16, "4-12": 4},
       "num_velocities": 32}


def _notes(n=40, seed=0):
    rng = np.random.default_rng(seed)
    onsets = np.cumsum(rng.uniform(0.05, 0.6, n))
    return [(float(o), float(rng.uniform(0.1, 1.5)), int(p), int(v)) for o, p, v in
            zip(onsets, rng.integers(30, 100, n), rng.integers(20, 120, n))]


@pytest.mark.parametrize("kind", ["cpword", "remi"])
def test_round_trip_same_notes_within_quantisation(tmp_path, kind):
    # 60 bpm in the file: a beat is a second; random (off-grid) onsets, durations and velocities
    perf = read_midi(write_midi(tmp_path / "a.mid", _notes()))
    tok = make_tokenizer({**CFG, "kind": kind})
    ids = encode(tok, perf, CFG["tempo_bpm"])
    assert ids.ndim == 2 and ids.shape[1] == len(vocab_sizes(tok))
    back = decode(tok, ids, CFG["tempo_bpm"])
    assert len(back.notes) == len(perf.notes)
    a, b = perf.notes, back.notes
    order_a, order_b = np.lexsort((a["pitch"], np.round(a["onset_sec"] / 0.03125))), \
        np.lexsort((b["pitch"], np.round(b["onset_sec"] / 0.03125)))
    a, b = a[order_a], b[order_b]
    grid = 60.0 / CFG["tempo_bpm"] / 16  # 31.25 ms
    assert np.array_equal(a["pitch"], b["pitch"])
    tick = 60.0 / CFG["tempo_bpm"] / 480  # seconds -> ticks rounds once more before the grid
    assert np.max(np.abs(a["onset_sec"] - b["onset_sec"])) <= grid / 2 + tick
    # durations: 1/16 beat up to 4 beats (2 s at 120 bpm), then 1/4 beat
    assert np.max(np.abs(a["duration_sec"] - b["duration_sec"])) <= grid + 2 * tick
    assert np.max(np.abs(a["velocity"] - b["velocity"])) <= 127 / 32 / 2 + 1


def test_tokenizer_saved_and_loaded_with_its_vocabulary(tmp_path):
    tok = make_tokenizer(CFG)
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert vocab_sizes(again) == vocab_sizes(tok) and special_ids(again) == {"pad": 0, "mask": 1}
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        load_tokenizer(tmp_path / "nothere.json")
    with pytest.raises(ValueError, match="unknown"):
        make_tokenizer({**CFG, "kind": "octuple?"})


def test_chunk_cuts_to_max_len_and_drops_a_short_tail():
    ids = np.arange(1050).reshape(-1, 1)
    pieces = chunk(ids, 512, min_len=32)
    assert [len(p) for p in pieces] == [512, 512]  # the 26-token tail is dropped
    assert [len(p) for p in chunk(ids, 512, min_len=1)] == [512, 512, 26]
    assert np.array_equal(np.concatenate(chunk(ids, 100)), ids)


def test_asap_work_merges_repeat_variants():
    assert asap_work("Beethoven/Piano_Sonatas/21-1_no_repeat/X.mid") == \
        asap_work("Beethoven/Piano_Sonatas/21-1/Y.mid")
    assert asap_work("Schumann/Toccata_repeat/A.mid") == asap_work("Schumann/Toccata/B.mid")
    assert asap_work("Beethoven/Piano_Sonatas/24-1_no_2_repeat/A.mid").endswith("/24-1")
    assert asap_work("Chopin/Ballades/1/A.mid") != asap_work("Chopin/Ballades/2/A.mid")


def _manifests():
    maestro = pd.DataFrame({"file": ["Schubert/Impromptu_op142/3/P1.mid", "Bach/Fugue/bwv_846/P.mid",
                                     "Bach/Fugue/bwv_846/midi_score.mid", "Chopin/Ballades/1/Q.mid",
                                     "Beethoven/WoO_80/R.mid"],
                            "status": ["ok", "ok", "ok", "ok", "ok"],
                            "role": ["performance", "performance", "score", "performance", "performance"],
                            "n_notes": [100, 200, 150, 300, 50]})
    giant = pd.DataFrame({"file": ["giantmidi-piano/a.mid", "maestro/b.mid", "ground_truth/c.mid"],
                          "status": ["ok"] * 3, "role": ["transcription", "performance", "score"],
                          "n_notes": [10, 10, 10]})
    gmap = giantmidi_works(pd.DataFrame({"Name": ["Schubert, Impromptus, D. 935, No. 4"],
                                         "GroundTruth": ["c.mid"], "Maestro": ["b.mid"],
                                         "GiantMIDI-Piano": ["a.mid"]}))
    return maestro, giant, gmap


def test_corpus_excludes_percepiano_works_and_keeps_the_rest():
    maestro, giant, gmap = _manifests()
    table = corpus_table(maestro, giant, gmap, ["performance", "transcription"],
                         ["WoO[ ._]*80", "D[ ._]*935|op[ ._]*142", "D[ ._]*960"])
    excluded = set(table.loc[table["excluded"] != "", "file"])
    assert excluded == {"Schubert/Impromptu_op142/3/P1.mid", "Beethoven/WoO_80/R.mid",
                        "giantmidi-piano/a.mid", "maestro/b.mid"}  # GiantMIDI by its piece name
    assert "Bach/Fugue/bwv_846/midi_score.mid" not in set(table["file"])  # scores are not corpus
    assert set(table.loc[table["excluded"] == "", "file"]) == {"Bach/Fugue/bwv_846/P.mid",
                                                                "Chopin/Ballades/1/Q.mid"}
    # the three GiantMIDI versions of a piece share one work
    assert gmap["giantmidi-piano/a.mid"] == gmap["maestro/b.mid"] == gmap["ground_truth/c.mid"]


def test_heldout_works_reach_the_fraction_and_are_seeded():
    table = pd.DataFrame({"work": [f"w{i}" for i in range(40)], "n_notes": np.arange(1, 41) * 10,
                          "excluded": ""})
    chosen = heldout_works(table, 0.1, seed=3)
    share = table.loc[table["work"].isin(chosen), "n_notes"].sum() / table["n_notes"].sum()
    assert share >= 0.1 and share < 0.3
    assert chosen == heldout_works(table, 0.1, seed=3) != heldout_works(table, 0.1, seed=4)
    assert len(heldout_works(table.iloc[:2], 0.9, seed=0)) == 1  # one work is left to train on


def test_test_segments_of_every_protocol():
    splits = pd.DataFrame({"segment": ["a", "b", "c", "d"], "group": "g",
                           "piece_split_s0": ["test", "0", "1", "1"],
                           "piece_split_s1": ["1", "0", "test", "1"],
                           "performer_split": ["1", "test", "test", "train_only"],
                           "work_split": ["0", "1", "2", "3"]})
    out = percepiano_test_segments(splits)
    assert out["segment"].tolist() == ["a", "b", "c"]
    assert out["protocols"].tolist() == ["piece_test_s0", "performer_test", "piece_test_s1;performer_test"]


def test_ngram_overlap_finds_a_passage_inside_a_corpus_file():
    rng = np.random.default_rng(0)
    corpus = [rng.integers(21, 109, 500), rng.integers(21, 109, 300)]
    inside = corpus[0][100:180]
    other = rng.integers(21, 109, 80)
    overlap = ngram_overlap(corpus, [inside, other], n=8)
    assert overlap[0] == 1.0 and overlap[1] < 0.05


def test_tokenize_stage_keeps_test_segments_out_of_the_corpus(tmp_path):
    """The stage on a tiny raw folder: an ASAP performance of a PercePiano work plays the test
    segment note for note; it is excluded and written down, the corpus has none of its notes."""
    raw = tmp_path / "data" / "raw"
    test_notes = _notes(30, seed=1)
    other = _notes(200, seed=2)
    leak = [(o + 5.0, d, p, v) for o, d, p, v in test_notes] + [(o + 30.0, d, p, v) for o, d, p, v in other[:50]]
    files = {"Schubert/Impromptu_op142/3/Leak.mid": leak, "Bach/Fugue/bwv_846/A.mid": other,
             "Chopin/Ballades/1/B.mid": _notes(150, seed=3), "Chopin/Ballades/2/C.mid": _notes(150, seed=4)}
    rows = []
    for rel, notes in files.items():
        (raw / "maestro" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_midi(raw / "maestro" / rel, notes)
        rows.append({"file": rel, "status": "ok", "role": "performance", "n_notes": len(notes)})
    bad = raw / "maestro" / "Liszt/x/Bad.mid"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a midi file")
    rows.append({"file": "Liszt/x/Bad.mid", "status": "ok", "role": "performance", "n_notes": 10})
    pd.DataFrame(rows).to_csv(raw / "maestro" / "manifest.csv", index=False)
    (raw / "giantmidi").mkdir(parents=True)
    pd.DataFrame(columns=["file", "status", "role", "n_notes"]).to_csv(raw / "giantmidi" / "manifest.csv", index=False)
    segs = {"Schubert_D935_no.3_4bars_1_1": test_notes, "Schubert_D935_no.3_4bars_2_1": _notes(30, seed=5)}
    (raw / "percepiano" / "midi").mkdir(parents=True)
    for name, notes in segs.items():
        write_midi(raw / "percepiano" / "midi" / f"{name}.mid", notes)
    splits = pd.DataFrame({"segment": list(segs), "piece_split_s0": ["test", "0"],
                           "performer_split": ["1", "2"], "work_split": ["0", "0"]})
    splits.to_csv(tmp_path / "splits.csv", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tokenize"]["max_len"] = 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "tokenize_midi.py"), "--params",
                           str(tmp_path / "params.yaml"), "--raw", str(raw), "--splits",
                           str(tmp_path / "splits.csv"), "--out", str(tmp_path / "tokens")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Bad.mid" in done.stderr  # the corrupt file is named, counted and skipped
    out = tmp_path / "tokens"
    excluded = pd.read_csv(out / "excluded.csv")
    assert set(excluded["name"]) == {"Schubert_D935_no.3_4bars_1_1",
                                     "maestro/Schubert/Impromptu_op142/3/Leak.mid"}
    corpus_files = pd.read_csv(out / "files.csv")
    assert "Schubert/Impromptu_op142/3/Leak.mid" not in set(corpus_files["file"])
    assert not corpus_files["file"].str.contains("percepiano|Schubert_D935").any()
    counts = json.loads((out / "counts.json").read_text())
    assert counts["files"] == 3 and counts["files_corrupt"] == 1
    assert counts["leak_check"]["test_overlap_with_excluded_files_max"] == 1.0
    assert counts["leak_check"]["test_overlap_with_corpus_max"] < 0.2
    # the corpus notes hold no window of the test segment's pitches
    corpus = np.load(out / "corpus.npz")
    test_pitch = read_midi(raw / "percepiano" / "midi" / "Schubert_D935_no.3_4bars_1_1.mid").notes["pitch"]
    assert ngram_overlap([corpus["notes"]["pitch"]], [test_pitch], 8)[0] < 0.2
    seqs = np.load(out / "sequences.npz")
    assert counts["sequences"] == len(seqs["offsets"]) - 1 and seqs["ids"].shape[1] == 5
    assert np.diff(seqs["offsets"]).max() <= 64
    pp = np.load(out / "percepiano.npz")
    assert sorted(pp["segments"]) == sorted(segs)
