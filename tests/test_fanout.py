"""pianoeval.fanout: the fan-out stages' batches (align, render, encode, degrade) give the same
outputs in the local process pool and on a Dask cluster (a local one of 2 worker processes);
the ``fanout`` section is checked."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from midi_factory import write_empty, write_midi
from pianoeval.align.batch import AlignConfig, Item, align_items
from pianoeval.audio.encode import encode_files
from pianoeval.audio.render import RenderConfig, RenderJob, resolve_soundfont
from pianoeval.audio.render_batch import render_all
from pianoeval.config import ConfigError, load_config, parse_section
from pianoeval.data.midi import SUSTAIN_CC
from pianoeval.degrade.audio import AudioItem, generate_audio
from pianoeval.degrade.generate import CleanItem, GenerateConfig, generate
from pianoeval.fanout import LOCAL, fan_out

ROOT = Path(__file__).resolve().parents[1]
SOUNDFONT = resolve_soundfont("TimGM6mb")[1]  # bundled with pretty_midi
LEVELS = yaml.safe_load((ROOT / "params.yaml").read_text())["degrade"]
SR = 24000


@pytest.fixture(scope="module")
def dask():
    """A ``fanout`` naming a local Dask cluster of 2 single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield parse_section("fanout", {"engine": "dask", "address": cluster.scheduler_address})


def midis(folder: Path, n: int) -> list[Path]:
    """``n`` short, different pedalled MIDI files."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write_midi(folder / f"m{k}.mid",
                       [(i * 0.3, 0.25, 48 + (i * (k + 3)) % 36, 40 + (i * 7 + k) % 80)
                        for i in range(20 + 4 * k)],
                       [(0.5, SUSTAIN_CC, 127), (3.0, SUSTAIN_CC, 0)]) for k in range(n)]


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def relative(records: list[dict], root: Path, key: str) -> list[dict]:
    """Records without the CPU time, ``key`` (a path) relative to ``root``."""
    return [{**{k: v for k, v in r.items() if k != "cpu_sec"},
             key: Path(r[key]).relative_to(root).as_posix() if r[key] else ""} for r in records]


def test_align_on_the_cluster_matches_the_local_pool(tmp_path, dask):
    from test_align import SCORE_NOTES

    score = str(write_midi(tmp_path / "score.mid", SCORE_NOTES, time_signatures=[(0, 4, 4)]))
    def played(k: int) -> str:  # the score played at half a second a beat, a little off
        return str(write_midi(tmp_path / f"p{k}.mid",
                              [(0.5 * b + 0.01 * k * (i % 3), 0.4 * d, p, v - 3 * k)
                               for i, (b, d, p, v) in enumerate(SCORE_NOTES)]))

    played = [played(k) for k in range(4)]
    items = [Item(f"s{k}", path, score, "score.mid") for k, path in enumerate(played)]
    items += [Item("no_score", played[0]), Item("unreadable", str(tmp_path / "none.mid"), score),
              Item("empty_score", played[1], str(write_empty(tmp_path / "e.mid")), "e.mid")]

    def run(fanout):
        out = align_items(items, AlignConfig(), n_jobs=2, chunksize=2, progress=False,
                          fanout=fanout)
        return out.alignments.drop(columns="seconds"), out.notes, out.segment_features, \
            out.messages

    local, cluster = run(LOCAL), run(dask)
    status = dict(zip(local[0]["segment"], local[0]["status"]))
    assert status == {"empty_score": "no_score", "no_score": "no_score", "s0": "ok", "s1": "ok",
                      "s2": "ok", "s3": "ok", "unreadable": "unreadable"}
    assert local[1]["segment"].nunique() == 6  # every readable performance has its notes
    for ours, theirs in zip(cluster[:3], local[:3]):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    assert cluster[3] == local[3] != []


@pytest.mark.skipif(SOUNDFONT is None, reason="pretty_midi's TimGM6mb.sf2 missing")
def test_render_on_the_cluster_matches_the_local_pool(tmp_path, dask):
    config = RenderConfig(tail_sec=0.5)
    paths = midis(tmp_path / "midi", 6)

    def run(out: Path, fanout) -> list[dict]:
        jobs = [RenderJob("percepiano", p.stem, str(p), "TimGM6mb", str(SOUNDFONT),
                          (str(out / f"{p.stem}.flac"),)) for p in paths]
        return relative(render_all(jobs, config, 2, fanout, progress=False), out, "file")

    local, cluster = run(tmp_path / "local", LOCAL), run(tmp_path / "dask", dask)
    assert [r["item"] for r in local] == [p.stem for p in paths]
    assert cluster == local and all(r["status"] == "ok" for r in local)
    assert files(tmp_path / "dask") == files(tmp_path / "local") != {}


def test_encode_on_the_cluster_matches_the_local_pool(tmp_path, dask):
    rng = np.random.default_rng(0)
    for k in range(10):  # the last one silent: an audio_error record, no file
        sf.write(tmp_path / f"a{k}.wav", rng.normal(0, 0.1, SR // 2) * (k < 9), SR)

    def run(out: Path, fanout) -> list[dict]:
        tasks = [(str(tmp_path / f"a{k}.wav"), str(out / f"p/A/a{k}.safetensors"), f"a{k}", "A")
                 for k in range(10)]
        return encode_files(tasks, "spectral", {}, workers=2, progress=False, fanout=fanout)

    strip = lambda records: [{k: v for k, v in r.items() if k not in ("cpu_sec", "pooled")}
                             for r in records]
    local, cluster = run(tmp_path / "local", LOCAL), run(tmp_path / "dask", dask)
    assert [r["status"] for r in local] == ["ok"] * 9 + ["audio_error"]
    assert strip(cluster) == strip(local)
    assert all(np.array_equal(c["pooled"], r["pooled"]) for c, r in zip(cluster[:9], local[:9]))
    assert files(tmp_path / "dask") == files(tmp_path / "local") != {}


def test_degrade_on_the_cluster_matches_the_local_pool(tmp_path, dask):
    bad = tmp_path / "midi" / "bad.mid"
    items = [CleanItem(p.stem, "percepiano", f"w{k % 2}", str(p))
             for k, p in enumerate(midis(tmp_path / "midi", 5))]
    items.insert(2, CleanItem("bad", "percepiano", "w9", str(bad)))
    bad.write_bytes(b"not a midi file")
    audio = [AudioItem(i.name, str(tmp_path / f"{i.name}.wav")) for i in items[:2]]
    for k, a in enumerate(audio):
        sf.write(a.path, np.random.default_rng(k).normal(0, 0.1, SR // 2), SR)

    def run(out: Path, fanout):
        config = GenerateConfig(LEVELS["families"], 3, midi_dir=str(out))
        return (generate([(i, None) for i in items], config, n_jobs=2, chunk_size=2,
                         fanout=fanout),
                generate_audio(audio, LEVELS["audio"], 3, {}, n_jobs=2, chunk_size=1,
                               fanout=fanout))

    local, cluster = run(tmp_path / "local", LOCAL), run(tmp_path / "dask", dask)
    (results, failures), (audio_results, _) = local
    assert [f for f, _ in failures] == ["bad"] and len(audio_results) == 2 * 4
    assert [s.item for s, _ in results][::16] == [i.name for i in items if i.name != "bad"]
    for (ours, fails), (theirs, their_fails) in zip(cluster, local):  # MIDI, then audio
        assert [s for s, _ in ours] == [s for s, _ in theirs] and fails == their_fails
        pd.testing.assert_frame_equal(pd.DataFrame([f for _, f in ours]),  # NaN == NaN here
                                      pd.DataFrame([f for _, f in theirs]), check_exact=True)
    assert files(tmp_path / "dask") == files(tmp_path / "local") != {}


def _square(x: int) -> int:
    return x * x


def test_results_come_in_job_order_inline_pooled_and_on_the_cluster(dask):
    jobs = list(range(23))
    expected = [x * x for x in jobs]
    assert list(fan_out(_square, jobs, 1)) == expected
    assert list(fan_out(_square, jobs, 2, chunksize=4)) == expected
    assert list(fan_out(_square, jobs, 2, dask, chunksize=4)) == expected


def test_workers_elsewhere_are_refused(tmp_path, dask, monkeypatch):
    monkeypatch.chdir(tmp_path)  # this process only: the workers stay where they started
    with pytest.raises(RuntimeError, match="start them from the repository"):
        list(fan_out(_square, [1, 2], 2, dask))


def test_params_yaml_fanout_parses_and_runs_locally():
    assert load_config("fanout", ROOT / "params.yaml") == LOCAL


@pytest.mark.parametrize("values, message", [
    ({"engine": "ray", "address": None}, r"fanout\.engine: Input should be 'local' or 'dask' "
                                         r"\(got 'ray'\)"),
    ({"engine": "dask", "address": None}, r"fanout: Value error, engine dask needs an address"),
    ({"engine": "dask", "address": ""}, r"fanout\.address: String should have at least 1"),
    ({"engine": "local"}, r"fanout\.address: missing"),
    ({"engine": "local", "address": None, "workers": 2}, r"fanout\.workers: unknown key"),
])
def test_a_bad_fanout_section_is_refused_naming_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        parse_section("fanout", values)


def test_a_bad_fanout_section_stops_the_stage_with_the_message(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("fanout: {engine: dask, address: null}\n")
    with pytest.raises(SystemExit, match=r"params\.yaml: fanout: .*needs an address"):
        load_config("fanout", params)
