import json
import os
import zipfile
from pathlib import Path

import pytest
import symusic
import yaml

from midi_factory import simple_notes, write_corrupt, write_empty, write_midi, write_no_notes, write_truncated
from pianoeval.config import ConfigError, IngestValidation, parse_section
from pianoeval.data.download import (download_into_mirror, download_source, extract_zip, fetch,
                                     sha256_file)
from pianoeval.data.ingest import (
    file_role, ingest_tree, normalise_name, source_folder, summarise,
)
from pianoeval.params import MIRROR_ENV

ROOT = Path(__file__).resolve().parents[1]
RULES = IngestValidation(min_duration_sec=1.0, max_duration_sec=14400.0, min_notes=1, max_note_sec=120.0)


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    (src / "midi").mkdir(parents=True)
    (src / "score_midi").mkdir()
    good = write_midi(src / "midi" / "A_8bars_1_1.mid", simple_notes(8))
    write_midi(src / "midi" / " A_8bars_2_1.mid", simple_notes(8))  # leading space upstream
    write_corrupt(src / "midi" / "A_8bars_3_1.mid")
    write_empty(src / "midi" / "A_8bars_4_1.mid")
    write_truncated(src / "midi" / "A_8bars_5_1.mid", good, 0.5)
    write_no_notes(src / "score_midi" / "A_8bars_Score_1.mid")
    write_midi(src / "midi" / "A_8bars_6_1.mid", [(0.0, 0.1, 60, 64)])  # 0.1 s: too short
    (src / "labels.json").write_text("{}")
    return src


def test_ingest_counts_and_skips_bad_files_without_failing(source, tmp_path):
    out = tmp_path / "out"
    rows = ingest_tree(source, out, RULES)
    status = {r["file"]: r["status"] for r in rows}
    assert status == {
        "labels.json": "ok",
        "midi/A_8bars_1_1.mid": "ok",
        "midi/A_8bars_2_1.mid": "ok",  # name normalised
        "midi/A_8bars_3_1.mid": "parse_error",
        "midi/A_8bars_4_1.mid": "empty_file",
        "midi/A_8bars_5_1.mid": "parse_error",
        "midi/A_8bars_6_1.mid": "too_short",
        "score_midi/A_8bars_Score_1.mid": "no_notes",
    }
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == ["labels.json", "midi/A_8bars_1_1.mid", "midi/A_8bars_2_1.mid"]
    ok = next(r for r in rows if r["file"] == "midi/A_8bars_1_1.mid")
    assert ok["n_notes"] == 8 and ok["duration_sec"] == pytest.approx(3.75, abs=1e-3)
    assert ok["sha256"] == sha256_file(source / "midi" / "A_8bars_1_1.mid")
    summary = summarise(rows, "mirror")
    assert summary["midi_ok"] == 2 and summary["midi_rejected"] == 5
    assert summary["rejected_by_reason"] == {"empty_file": 1, "no_notes": 1, "parse_error": 2,
                                             "too_short": 1}


def test_file_roles_and_name_normalisation():
    from pathlib import Path
    assert normalise_name(Path("midi/ Schubert_x.mid")) == Path("midi/Schubert_x.mid")
    assert file_role(Path("Bach/Fugue/bwv_846/midi_score.mid")) == "score"
    assert file_role(Path("Bach/Fugue/bwv_846/Shi05M.mid")) == "performance"
    assert file_role(Path("giantmidi-piano/x.mid")) == "transcription"
    assert file_role(Path("score_midi/x.mid")) == "score"
    assert file_role(Path("labels/x.json")) == "other"


def test_source_folder_reads_the_configured_mirror_only(tmp_path):
    mirror, other = tmp_path / "m", tmp_path / "e"
    for root in (mirror, other):
        (root / "percepiano").mkdir(parents=True)
    spec = {"dir": "percepiano"}
    assert source_folder("percepiano", spec, str(mirror), environ={}) == mirror / "percepiano"
    same = {MIRROR_ENV: str(mirror / ".." / "m")}  # the env var may name the same folder
    assert source_folder("percepiano", spec, str(mirror), environ=same) == mirror / "percepiano"
    with pytest.raises(ValueError, match="ingest.mirror"):  # ... but never another one
        source_folder("percepiano", spec, str(mirror), environ={MIRROR_ENV: str(other)})
    with pytest.raises(FileNotFoundError, match=f"ingest.mirror: {tmp_path / 'nope'}"):
        source_folder("percepiano", spec, str(tmp_path / "nope"), environ={})
    with pytest.raises(FileNotFoundError, match="ingest.sources.percepiano.dir"):
        source_folder("percepiano", {"dir": "missing"}, str(mirror), environ={})


def test_dvc_sees_the_mirror_files_of_each_ingest_item():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "${ingest.mirror}/${item.dir}" in stages["ingest"]["do"]["deps"]
    assert "ingest.mirror" in stages["ingest"]["do"]["params"]


def test_fetch_verifies_sha256_and_extract_refuses_zip_slip(tmp_path):
    archive = tmp_path / "up.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("repo-abc/midi/a.mid", b"x")
        zf.writestr("repo-abc/labels.json", json.dumps({}))
    digest = sha256_file(archive)
    with pytest.raises(ValueError, match="no pinned sha256"):
        fetch(archive.as_uri(), tmp_path / "dl0" / "up.zip", None)
    assert not (tmp_path / "dl0").exists()  # refused before anything is fetched
    got = fetch(archive.as_uri(), tmp_path / "dl" / "up.zip", digest)
    assert sha256_file(got) == digest
    root = extract_zip(got, tmp_path / "x")
    assert root.name == "repo-abc" and (root / "midi" / "a.mid").read_bytes() == b"x"
    with pytest.raises(ValueError, match="does not match the pinned"):
        fetch(archive.as_uri(), tmp_path / "dl2" / "up.zip", "0" * 64)
    assert not (tmp_path / "dl2" / "up.zip").exists()  # a bad download is not kept

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped.txt", b"x")
    with pytest.raises(ValueError, match="escapes the target folder"):
        extract_zip(evil, tmp_path / "y")
    assert not (tmp_path / "escaped.txt").exists()


def test_download_source_lays_out_an_upstream_archive_like_the_mirror(tmp_path):
    archive = tmp_path / "percepiano.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("PercePiano-e67/virtuoso/data/all_2rounds/A_8bars_1_1.mid", b"midi")
        zf.writestr("PercePiano-e67/virtuoso/data/score_midi/A_8bars_Score_1.mid", b"score")
        zf.writestr("PercePiano-e67/label.json", b"{}")
    digest = sha256_file(archive)
    upstream = {"percepiano": {"url": archive.as_uri(),
                               "layout": {"midi": "virtuoso/data/all_2rounds",
                                          "score_midi": "virtuoso/data/score_midi",
                                          "labels/all.json": "label.json"}}}
    root = download_source("percepiano", digest, tmp_path / "dl", upstream)
    assert (root / "midi" / "A_8bars_1_1.mid").read_bytes() == b"midi"
    assert (root / "score_midi" / "A_8bars_Score_1.mid").read_bytes() == b"score"
    assert (root / "labels" / "all.json").read_bytes() == b"{}"
    assert download_source("percepiano", digest, tmp_path / "dl", upstream) == root  # cached

    upstream["percepiano"]["layout"]["labels/ratings.csv"] = "labels/total_2rounds.csv"
    with pytest.raises(FileNotFoundError, match="no labels/total_2rounds.csv"):
        download_source("percepiano", digest, tmp_path / "dl2", upstream)

    spec = {"dir": "percepiano", "download": {"archive": "percepiano", "sha256": None}}
    with pytest.raises(ValueError, match="download.sha256: no pinned digest"):
        download_into_mirror("percepiano", spec, tmp_path / "mirror", tmp_path / "dl3", upstream)
    spec["download"]["sha256"] = digest
    del upstream["percepiano"]["layout"]["labels/ratings.csv"]
    folder = download_into_mirror("percepiano", spec, tmp_path / "mirror", tmp_path / "dl3", upstream)
    assert folder == tmp_path / "mirror" / "percepiano"
    assert (folder / "midi" / "A_8bars_1_1.mid").read_bytes() == b"midi"


def _write_drums(path: Path) -> Path:
    score = symusic.Score(480)
    track = symusic.Track("drums", 0, True)  # name, program, is_drum
    for k in range(8):
        track.notes.append(symusic.Note(k * 480, 240, 36, 100))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def test_ingest_counts_bad_names_collisions_drums_and_stuck_notes_and_copies_the_rest(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "midi").mkdir(parents=True)
    write_midi(src / "midi" / "A_8bars_1_1.mid", simple_notes(8))
    write_midi(src / "midi" / " A_8bars_1_1.mid", simple_notes(8))  # normalises to the same name
    write_midi(src / "midi" / "A_8bars_2_1.mid", simple_notes(8))
    with open(os.fsencode(src / "midi") + b"/A_8bars_\xff_1.mid", "wb") as fh:  # not UTF-8
        fh.write((src / "midi" / "A_8bars_2_1.mid").read_bytes())
    _write_drums(src / "midi" / "A_8bars_3_1.mid")
    write_midi(src / "midi" / "A_8bars_4_1.mid", simple_notes(8) + [(4.0, 7200.0, 40, 50)])
    rows = ingest_tree(src, out, RULES)
    status = {r["source_file"]: r["status"] for r in rows}
    assert status == {"midi/ A_8bars_1_1.mid": "ok", "midi/A_8bars_1_1.mid": "name_collision",
                      "midi/A_8bars_2_1.mid": "ok", "midi/A_8bars_3_1.mid": "drums_only",
                      "midi/A_8bars_4_1.mid": "note_too_long",
                      "midi/A_8bars_\\xff_1.mid": "bad_name"}
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == ["midi/A_8bars_1_1.mid", "midi/A_8bars_2_1.mid"]
    import pandas as pd  # the manifest (names escaped) is writable and reads back
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    assert len(pd.read_csv(tmp_path / "manifest.csv")) == 6
    assert summarise(rows, "mirror")["rejected_by_reason"] == {
        "bad_name": 1, "drums_only": 1, "name_collision": 1, "note_too_long": 1}


@pytest.mark.parametrize("key, value, message", [
    ("max_duration_sec", -1.0, "Input should be greater than 0"),
    ("min_notes", 0, "Input should be greater than or equal to 1"),
    ("min_notes", 1.5, "Input should be a valid integer"),
    ("max_note_sec", 0.0, "Input should be greater than 0"),
    ("min_duration_sec", -0.5, "Input should be greater than or equal to 0")])
def test_validation_rejects_an_out_of_range_value_naming_the_key(key, value, message):
    """The ranges are checked where the section is read (pianoeval.config), before any work."""
    fields = {"min_duration_sec": 1.0, "max_duration_sec": 14400.0, "min_notes": 1,
              "max_note_sec": 120.0, key: value}
    values = {**yaml.safe_load((ROOT / "params.yaml").read_text())["ingest"], "validation": fields}
    with pytest.raises(ConfigError, match=rf"ingest\.validation\.{key}: {message}"):
        parse_section("ingest", values)


def test_validation_refuses_a_maximum_duration_below_the_minimum():
    values = yaml.safe_load((ROOT / "params.yaml").read_text())["ingest"]
    values["validation"]["max_duration_sec"] = 0.5
    with pytest.raises(ConfigError, match=r"ingest\.validation: Value error, max_duration_sec "
                                          r"must exceed min_duration_sec"):
        parse_section("ingest", values)
