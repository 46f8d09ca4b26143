"""The tokenize stage's building blocks: corpus and segment tokens, the npz arrays, exclusions,
the leak check and counts."""
import json

import numpy as np
import pandas as pd
import pytest

from midi_factory import write_midi
from pianoeval.data.midi import NOTE_DTYPE, read_midi
from pianoeval.tokens import build
from pianoeval.tokens.tokenizer import chunk, encode, load_tokenizer, make_tokenizer

CFG = {"kind": "cpword", "tempo_bpm": 120.0, "beat_res": {"0-4": 16, "4-12": 4},
       "num_velocities": 32}


def _notes(n, seed):
    rng = np.random.default_rng(seed)
    onsets = np.cumsum(rng.uniform(0.05, 0.6, n))
    return [(float(o), 0.3, int(p), 80) for o, p in zip(onsets, rng.integers(30, 100, n))]


@pytest.fixture
def corpus_dir(tmp_path):
    """Three maestro performances (one not MIDI) and one file excluded as a PercePiano work."""
    raw = tmp_path / "raw"
    files = {"Bach/Fugue/A.mid": _notes(120, 0), "Chopin/Ballades/1/B.mid": _notes(40, 1),
             "Schubert/Impromptu_op142/3/Leak.mid": _notes(60, 2)}
    for rel, notes in files.items():
        (raw / "maestro" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_midi(raw / "maestro" / rel, notes)
    (raw / "maestro" / "Liszt/x").mkdir(parents=True)
    (raw / "maestro" / "Liszt/x/Bad.mid").write_bytes(b"not a midi file")
    table = pd.DataFrame({"source": "maestro",
                          "file": ["Bach/Fugue/A.mid", "Liszt/x/Bad.mid", "Chopin/Ballades/1/B.mid",
                                   "Schubert/Impromptu_op142/3/Leak.mid"],
                          "work": ["asap:Bach/Fugue", "asap:Liszt/x", "asap:Chopin/Ballades/1",
                                   "asap:Schubert/Impromptu_op142/3"],
                          "n_notes": [120, 10, 40, 60],
                          "excluded": ["", "", "", "PercePiano work /op142/"]})
    return raw, table, files


def test_read_corpus_table_from_the_manifests(tmp_path):
    raw = tmp_path / "raw"
    (raw / "maestro").mkdir(parents=True), (raw / "giantmidi").mkdir()
    pd.DataFrame({"file": ["Bach/Fugue/A.mid", "Schubert/Impromptu_op142/3/P.mid"],
                  "status": "ok", "role": "performance", "n_notes": [5, 6]}
                 ).to_csv(raw / "maestro" / "manifest.csv", index=False)
    pd.DataFrame({"file": ["maestro/b.mid"], "status": ["ok"], "role": ["performance"],
                  "n_notes": [7]}).to_csv(raw / "giantmidi" / "manifest.csv", index=False)
    table = build.read_corpus_table(raw, ["performance"], ["op[ ._]*142"])
    assert table["excluded"].ne("").tolist() == [False, True, False]
    assert table["work"].iloc[2] == "giantmidi:maestro/b.mid"  # no ground-truth table: own work
    pd.DataFrame({"Name": ["Piece X"], "GroundTruth": ["c.mid"], "Maestro": ["b.mid"],
                  "GiantMIDI-Piano": ["a.mid"]}).to_csv(
        raw / "giantmidi" / "groundtruth_maestro_giantmidi-piano.csv", sep="\t", index=False)
    assert build.read_corpus_table(raw, ["performance"], [])["work"].iloc[2] == "giantmidi:Piece X"


def test_save_tokenizer_writes_a_loadable_file(tmp_path):
    tok = make_tokenizer(CFG)
    build.save_tokenizer(tok, tmp_path / "tokenizer.json")
    assert load_tokenizer(tmp_path / "tokenizer.json").vocab == tok.vocab


def test_save_tokenizer_refuses_a_vocabulary_too_big_for_int16(tmp_path):
    class Huge:
        is_multi_voc, vocab = False, dict.fromkeys(range(2**15))
    with pytest.raises(ValueError, match="int16"):
        build.save_tokenizer(Huge(), tmp_path / "tokenizer.json")
    assert not (tmp_path / "tokenizer.json").exists()


def test_tokenize_corpus_chunks_kept_files_and_skips_a_corrupt_one(corpus_dir, caplog):
    raw, table, files = corpus_dir
    tok = make_tokenizer(CFG)
    corpus = build.tokenize_corpus(table, {"asap:Chopin/Ballades/1"}, raw, tok, 120.0,
                                   max_len=64, min_len=8)
    f = corpus.files
    assert f["file"].tolist() == ["Bach/Fugue/A.mid", "Liszt/x/Bad.mid", "Chopin/Ballades/1/B.mid"]
    assert f.columns.tolist() == ["source", "file", "work", "n_notes", "excluded", "heldout",
                                  "status", "n_tokens", "n_sequences"]
    assert f["status"].tolist() == ["ok", "corrupt", "ok"] and "Bad.mid" in caplog.text
    assert f["heldout"].tolist() == [False, False, True]
    assert f["n_notes"].tolist() == [120, 0, 40] and len(corpus.notes[1]) == 0
    # each file's sequences are its chunked tokens, in file order
    expected = [chunk(encode(tok, read_midi(raw / "maestro" / rel), 120.0), 64, 8)
                for rel in ("Bach/Fugue/A.mid", "Chopin/Ballades/1/B.mid")]
    assert f["n_sequences"].tolist() == [len(expected[0]), 0, len(expected[1])]
    assert corpus.sequence_file == [0] * len(expected[0]) + [2] * len(expected[1])
    assert all(np.array_equal(a, b) for a, b in zip(corpus.sequences, expected[0] + expected[1]))
    assert f["n_tokens"].iloc[0] > 64 > f["n_sequences"].iloc[0]


def test_arrays_concatenate_with_offsets_and_int16_ids(corpus_dir):
    raw, table, _ = corpus_dir
    corpus = build.tokenize_corpus(table, {"asap:Chopin/Ballades/1"}, raw, make_tokenizer(CFG),
                                   120.0, max_len=64, min_len=8)
    notes = build.corpus_arrays(corpus)
    assert notes["offsets"].tolist() == [0, 120, 120, 160] and notes["notes"].dtype == NOTE_DTYPE
    seqs = build.sequence_arrays(corpus)
    assert seqs["ids"].dtype == np.int16 and seqs["ids"].shape[1] == 5
    assert np.array_equal(seqs["ids"][seqs["offsets"][-2]:], corpus.sequences[-1])
    assert seqs["heldout"].tolist() == [i == 2 for i in seqs["file_index"]]
    segments = build.SegmentTokens(["a", "b"], [np.ones((3, 5), int), np.zeros((2, 5), int)],
                                   [np.array([60]), np.array([61])])
    arrays = build.segment_arrays(segments)
    assert arrays["segments"].tolist() == ["a", "b"] and arrays["offsets"].tolist() == [0, 3, 5]
    assert arrays["ids"].dtype == np.int16 and arrays["ids"][:3].sum() == 15


def test_tokenize_segments_in_the_given_order(tmp_path):
    for name, seed in (("s1", 3), ("s2", 4)):
        write_midi(tmp_path / f"{name}.mid", _notes(20, seed))
    segments = build.tokenize_segments(["s2", "s1"], tmp_path, make_tokenizer(CFG), 120.0)
    assert segments.names == ["s2", "s1"]
    assert [p.tolist() for p in segments.pitch] == [[n[2] for n in sorted(_notes(20, s))]
                                                   for s in (4, 3)]
    assert all(ids.shape[1] == 5 and len(ids) >= 20 for ids in segments.ids)


def test_excluded_table_lists_test_segments_then_dropped_files(corpus_dir):
    _, table, _ = corpus_dir
    tests = pd.DataFrame({"segment": ["seg_a"], "protocols": ["piece_test_s0;performer_test"]})
    out = build.excluded_table(table, tests)
    assert out.to_dict("records") == [
        {"kind": "percepiano_test_segment", "name": "seg_a",
         "reason": "test set of piece_test_s0;performer_test"},
        {"kind": "corpus_file", "name": "maestro/Schubert/Impromptu_op142/3/Leak.mid",
         "reason": "PercePiano work /op142/"}]


def test_leak_check_scores_only_the_test_segments(corpus_dir):
    raw, table, files = corpus_dir
    dropped = build.excluded_pitch(table, raw)
    assert [p.tolist() for p in dropped] == [[n[2] for n in files["Schubert/Impromptu_op142/3/Leak.mid"]]]
    rng = np.random.default_rng(9)
    corpus = build.CorpusTokens(pd.DataFrame(), [np.array([], NOTE_DTYPE)], [], [])
    leaked, other = dropped[0][10:40], rng.integers(21, 109, 30)
    segments = build.SegmentTokens(["train_seg", "test_seg", "test_other"], [None] * 3,
                                   [leaked, leaked, other])
    tests = pd.DataFrame({"segment": ["test_seg", "test_other"], "protocols": "piece_test_s0"})
    leak = build.leak_check(corpus, segments, tests, dropped, 8)
    assert leak == {"ngram": 8, "test_overlap_with_corpus_mean": 0.0,
                    "test_overlap_with_corpus_max": 0.0,
                    "test_overlap_with_excluded_files_mean": pytest.approx(0.5, abs=0.03),
                    "test_overlap_with_excluded_files_max": 1.0}
    assert build.leak_check(corpus, segments, tests, [], 8)["test_overlap_with_excluded_files_max"] == 0


def test_corpus_counts_split_by_heldout_and_source():
    files = pd.DataFrame({"source": ["maestro", "maestro", "giantmidi", "maestro"],
                          "work": ["w1", "w1", "w2", "w3"], "heldout": [False, False, True, False],
                          "status": ["ok", "ok", "ok", "corrupt"], "n_notes": [10, 20, 30, 0],
                          "n_tokens": [100, 200, 300, 0], "n_sequences": [1, 2, 3, 0]})
    corpus = build.CorpusTokens(files, [], [np.zeros((1, 5))] * 6, [0, 1, 1, 2, 2, 2])
    table = pd.DataFrame({"excluded": ["", "", "", "", "PercePiano work /x/"]})
    segments = build.SegmentTokens(["a", "b"], [np.zeros((600, 5)), np.zeros((10, 5))], [])
    tests = pd.DataFrame({"segment": ["a"], "protocols": ["piece_test_s0"]})
    counts = build.corpus_counts(corpus, table, tests, segments, make_tokenizer(CFG), "cpword",
                                 512, {"ngram": 8})
    assert counts["files"] == 3 and counts["files_corrupt"] == 1
    assert counts["files_excluded_percepiano_works"] == 1
    assert counts["percepiano_test_segments_excluded"] == 1
    assert counts["works"] == 2 and counts["heldout_works"] == 1
    assert counts["notes"] == 60 and counts["tokens"] == 600 and counts["sequences"] == 6
    assert counts["train"] == {"files": 2, "tokens": 300, "sequences": 3}
    assert counts["heldout"] == {"files": 1, "tokens": 300, "sequences": 3}
    assert counts["by_source"] == {"giantmidi": {"files": 1, "tokens": 300},
                                   "maestro": {"files": 2, "tokens": 300}}
    assert counts["percepiano_segments"] == {"segments": 2, "tokens": 610, "longer_than_max_len": 1}
    assert counts["vocab_sizes"] == [len(v) for v in make_tokenizer(CFG).vocab]
    assert list(counts)[:2] == ["tokenizer", "vocab_sizes"] and list(counts)[-1] == "leak_check"
    json.dumps(counts)  # plain Python numbers only
