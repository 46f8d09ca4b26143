"""encode_audio's logic: the encoding tasks, the index of encoded files and its metrics."""
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pianoeval.audio.encode import (INDEX_COLUMNS, encode_files, encoded_index, encoding_metrics,
                                    encoding_tasks, write_pooled)
from pianoeval.audio.encoders import POOLED_FILE, load_embedding
from pianoeval.audio.encode import load_pooled

SR = 24000


def audio_index(rows):
    """An audio index.csv frame from (source, soundfont, item, status) rows."""
    return pd.DataFrame([{"source": s, "soundfont": sf_, "item": i, "status": st,
                          "file": f"{s}/{sf_}/{i}.wav"} for s, sf_, i, st in rows])


def record(item, soundfont, status="ok", error=""):
    return {"item": item, "soundfont": soundfont, "status": status, "error": error,
            "n_frames": 5 if status == "ok" else 0, "cpu_sec": 0.5}


def test_tasks_keep_ok_rows_of_the_sources_sorted_and_mirror_the_layout(tmp_path):
    index = audio_index([("p", "B", "x2", "ok"), ("p", "A", "x9", "ok"), ("p", "A", "x1", "ok"),
                         ("p", "A", "bad", "render_error"), ("other", "A", "y", "ok")])
    tasks = encoding_tasks(index, tmp_path / "audio", tmp_path / "emb", ["p"], None)
    assert [(t[2], t[3]) for t in tasks] == [("x1", "A"), ("x9", "A"), ("x2", "B")]
    assert tasks[0][:2] == (str(tmp_path / "audio/p/A/x1.wav"),
                            str(tmp_path / "emb/p/A/x1.safetensors"))


def test_tasks_of_listed_soundfonts_warn_about_unrendered_ones(tmp_path, caplog):
    index = audio_index([("p", "A", "x", "ok"), ("p", "B", "x", "ok")])
    with caplog.at_level(logging.WARNING):
        tasks = encoding_tasks(index, tmp_path, tmp_path, ["p"], ["B", "Z"])
    assert [t[3] for t in tasks] == ["B"]
    assert "['Z']" in caplog.text
    assert encoding_tasks(index, tmp_path, tmp_path, ["q"], None) == []


def test_index_names_source_and_file_and_blanks_failed_files():
    out = Path("emb")
    tasks = [("a.wav", "emb/p/A/x.safetensors", "x", "A"),
             ("b.wav", "emb/m/A/y/w0.safetensors", "y", "A")]
    frame = encoded_index([record("x", "A"), record("y", "A", "audio_error", "silent")], tasks, out)
    assert frame["source"].tolist() == ["p", "m"]
    assert frame["file"].tolist() == ["p/A/x.safetensors", ""]
    assert set(INDEX_COLUMNS) <= set(frame.columns) and "cpu_sec" in frame


def test_metrics_count_files_and_failures_per_soundfont():
    frame = pd.DataFrame([record("x", "A"), record("y", "A", "audio_error", "silent"),
                          record("x", "B")])
    metrics = encoding_metrics(frame, "spectral", np.int64(3))
    assert metrics == {"encoder": "spectral", "dim": 3,
                       "by_soundfont": {"A": {"files": 1, "failed": 1},
                                        "B": {"files": 1, "failed": 0}},
                       "n_failed": 1,
                       "failed": [{"item": "y", "soundfont": "A", "error": "silent"}]}


def test_unusable_audio_is_recorded_not_raised(tmp_path):
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    sf.write(tmp_path / "good.wav", noise, SR)
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    out = tmp_path / "emb"
    tasks = [(str(tmp_path / f"{n}.wav"), str(out / f"p/A/{n}.safetensors"), n, "A")
             for n in ("good", "silent")]
    frame = encoded_index(encode_files(tasks, "spectral", {}, progress=False), tasks, out)
    assert frame["status"].tolist() == ["ok", "audio_error"]
    assert "silent" in frame["error"][1] and frame["n_frames"][0] == 1 + SR // 512
    assert (out / "p/A/good.safetensors").is_file()
    assert not (out / "p/A/silent.safetensors").exists()
    assert frame["file"].tolist() == ["p/A/good.safetensors", ""]


def test_pooled_file_holds_each_encoded_files_vector_and_load_pooled_reads_it(tmp_path):
    rng = np.random.default_rng(1)
    names = ["b", "silent", "a", "c"]
    for k, n in enumerate(names):
        sf.write(tmp_path / f"{n}.wav", rng.normal(0, 0.1, SR // 2) * (n != "silent"), SR)
    out = tmp_path / "emb"
    tasks = [(str(tmp_path / f"{n}.wav"), str(out / f"p/{sf_}/{n}.safetensors"), n, sf_)
             for n, sf_ in zip(names, "ABAA")]
    frame = encoded_index(encode_files(tasks, "spectral", {}, progress=False), tasks, out)
    frame[INDEX_COLUMNS].to_csv(out / "index.csv", index=False)
    (out / "config.json").write_text("{}")
    write_pooled(frame, out)

    table, cols = load_pooled(out, "p", "A")
    assert table["segment"].tolist() == ["b", "a", "c"]  # index order, the silent file left out
    for row, name in zip(table[cols].to_numpy(), ["b", "a", "c"]):
        per_file = load_embedding(out / f"p/A/{name}.safetensors", ("pooled",))["pooled"]
        assert np.array_equal(row, per_file.astype(float))
    with pytest.raises(ValueError, match="no embeddings for source 'p', soundfont 'B'"):
        load_pooled(out, "p", "B")  # its one file was silent

    write_pooled(frame.iloc[:2], out)  # an index that no longer matches the pooled rows
    with pytest.raises(ValueError, match=rf"{POOLED_FILE}: 1 rows, but index.csv lists 3 "):
        load_pooled(out, "p", "A")
