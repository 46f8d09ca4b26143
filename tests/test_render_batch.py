"""The render stage's index and counts (pianoeval.audio.render_batch)."""
import hashlib
from pathlib import Path

from pianoeval.audio.render_batch import render_index, render_metrics, speed_line


def _records(out: Path) -> list[dict]:
    row = dict(source="percepiano", soundfont="FluidR3_GM", start_sec=0.0, error="",
               cpu_sec=0.5, status="ok")
    records = [
        {**row, "item": "B_8bars_1_1", "file": str(out / "percepiano/FluidR3_GM/B.flac"),
         "end_sec": 20.0, "duration_sec": 21.0},
        {**row, "item": "A_8bars_1_1", "file": str(out / "percepiano/FluidR3_GM/A.flac"),
         "end_sec": 10.0, "duration_sec": 11.0},
        {**row, "item": "C_8bars_1_1", "file": str(out / "percepiano/FluidR3_GM/C.flac"),
         "end_sec": 5.0, "duration_sec": 0.0, "status": "failed", "error": "synth"},
        {**row, "source": "maestro", "item": "perf", "start_sec": 30.0, "end_sec": 60.0,
         "file": str(out / "maestro/FluidR3_GM/perf@30.flac"), "duration_sec": 30.0},
        {**row, "source": "maestro", "item": "perf", "start_sec": 0.0, "end_sec": 30.0,
         "file": str(out / "maestro/FluidR3_GM/perf@0.flac"), "duration_sec": 30.0},
    ]
    for r in records:
        if r["status"] == "ok":
            Path(r["file"]).parent.mkdir(parents=True, exist_ok=True)
            Path(r["file"]).write_bytes(r["item"].encode() + str(r["start_sec"]).encode())
    return records


def test_render_index_is_sorted_relative_and_drops_cpu_time(tmp_path):
    index = render_index(_records(tmp_path), tmp_path)
    assert "cpu_sec" not in index.columns
    assert list(zip(index["source"], index["item"], index["start_sec"])) == [
        ("maestro", "perf", 0.0), ("maestro", "perf", 30.0), ("percepiano", "A_8bars_1_1", 0.0),
        ("percepiano", "B_8bars_1_1", 0.0), ("percepiano", "C_8bars_1_1", 0.0)]
    assert index["file"].tolist() == ["maestro/FluidR3_GM/perf@0.flac",
                                      "maestro/FluidR3_GM/perf@30.flac",
                                      "percepiano/FluidR3_GM/A.flac",
                                      "percepiano/FluidR3_GM/B.flac", ""]
    assert index["sha256"].tolist()[2] == hashlib.sha256(b"A_8bars_1_10.0").hexdigest()
    assert index["sha256"].str.len().tolist() == [64, 64, 64, 64, 0]  # none for a failed file


def test_render_metrics_count_files_hours_and_failures(tmp_path):
    index = render_index(_records(tmp_path), tmp_path)
    metrics = render_metrics(index, ["FluidR3_GM"], ["FluidR3_GM", "Missing", "/x/FluidR3_GM.sf2"],
                             24000, "rms")
    assert metrics["skipped_soundfonts"] == ["Missing"]  # a path counts by its stem
    assert metrics["by_source"] == {
        "maestro/FluidR3_GM": {"files": 2, "failed": 0, "audio_hours": round(60 / 3600, 4)},
        "percepiano/FluidR3_GM": {"files": 2, "failed": 1, "audio_hours": round(32 / 3600, 4)}}
    assert metrics["n_failed"] == 1
    assert metrics["failed"] == [{"item": "C_8bars_1_1", "soundfont": "FluidR3_GM",
                                  "status": "failed", "error": "synth"}]


def test_speed_line_counts_a_performance_once_up_to_its_last_window(tmp_path):
    # synthesised: 60 s of maestro (one rendering to the last window's end) + 20 + 10 s
    line = speed_line(_records(tmp_path), wall_sec=4.5, workers=2)
    assert line.startswith("90 s of audio in 4.5 s wall (2 workers): 36x real time per core")
    assert line.endswith("10x per worker by wall time")
