"""Audio: rendering, augmentation, encoders, audio checks and the audio-only models."""
import random
import time

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from midi_factory import perf, simple_notes, write_corrupt, write_midi
from pianoeval.audio import augment as aug
from pianoeval.audio.checks import clipped_fraction, validate_audio
from pianoeval.audio.encoders import WeightsNotFoundError, make_encoder
from pianoeval.audio.render import (RenderConfig, RenderJob, Renderer, available_soundfonts,
                                    gated_rms_dbfs, maestro_jobs, normalize_loudness,
                                    plan_windows, render_performance, resolve_soundfont, run_job)
from pianoeval.data.midi import read_midi

SR = 24000
SOUNDFONT = resolve_soundfont("TimGM6mb")[1]  # bundled with pretty_midi: always present
CONFIG = RenderConfig(tail_sec=1.0)
pytestmark = pytest.mark.skipif(SOUNDFONT is None, reason="pretty_midi's TimGM6mb.sf2 missing")


def energy(y, start, end):
    return float(np.sum(y[int(start * SR):int(end * SR)].astype(np.float64) ** 2))


@pytest.fixture(scope="module")
def piano():
    """Two seconds of normalised piano from a generated MIDI file."""
    notes = [(0.25 * i, 0.4, 60 + (i * 5) % 12, 50 + 10 * (i % 5)) for i in range(8)]
    y = render_performance(perf(notes, [(0.0, 64, 127), (1.5, 64, 0)]), SOUNDFONT, CONFIG)
    return normalize_loudness(y, SR)[0]


# ----------------------------------------------------------------------------- rendering

def test_render_generated_midi_has_sound_length_and_rate(tmp_path):
    midi = write_midi(tmp_path / "a.mid", simple_notes(n=4, ioi=0.5, dur=0.25))
    out = tmp_path / "a.flac"
    job = RenderJob("percepiano", "a", str(midi), "TimGM6mb", str(SOUNDFONT), (str(out),))
    (record,) = run_job(job, CONFIG)
    assert record["status"] == "ok", record
    y, sr = sf.read(out)
    assert sr == SR and y.ndim == 1
    expected = round((read_midi(midi).duration_sec + CONFIG.tail_sec) * SR)
    assert len(y) == expected  # last note off (1.75 s) + 1 s tail
    assert gated_rms_dbfs(y, SR) == pytest.approx(CONFIG.target_dbfs, abs=0.2)
    assert np.max(np.abs(y)) <= 10 ** (CONFIG.peak_dbfs / 20) + 1e-4
    # sound where the notes are, near-silence before the first onset would be wrong
    assert energy(y, 0.0, 0.25) > 0 and energy(y, 1.5, 1.75) > 0


def test_sustain_pedal_lengthens_the_decay():
    notes = [(0.0, 0.3, 60, 80), (0.0, 0.3, 64, 80)]
    dry = render_performance(perf(notes), SOUNDFONT, RenderConfig(tail_sec=2.0))
    pedal = render_performance(perf(notes, [(0.0, 64, 127), (2.0, 64, 0)]), SOUNDFONT,
                               RenderConfig(tail_sec=2.0))
    assert len(dry) == len(pedal)
    assert energy(pedal, 0.0, 0.3) == pytest.approx(energy(dry, 0.0, 0.3), rel=0.05)
    assert energy(pedal, 0.5, 2.0) > 10 * energy(dry, 0.5, 2.0)  # rings on after the note off


def test_velocity_and_soft_pedal_are_heard():
    loud = render_performance(perf([(0.0, 0.5, 60, 120)]), SOUNDFONT, CONFIG)
    soft = render_performance(perf([(0.0, 0.5, 60, 30)]), SOUNDFONT, CONFIG)
    una_corda = render_performance(perf([(0.0, 0.5, 60, 120)], [(0.0, 67, 127)]), SOUNDFONT, CONFIG)
    assert energy(loud, 0, 0.5) > 10 * energy(soft, 0, 0.5)
    assert energy(una_corda, 0, 0.5) < energy(loud, 0, 0.5) * 10 ** (-2 / 10)  # > 2 dB quieter


def test_rendering_is_deterministic_whatever_came_before():
    a = perf(simple_notes(n=6, ioi=0.2, dur=0.5), [(0.1, 64, 127), (0.9, 64, 0)])
    b = perf([(0.0, 2.0, p, 100) for p in (36, 48, 60, 72, 84)], [(0.0, 64, 127)])
    first = render_performance(a, SOUNDFONT, CONFIG)
    with Renderer(SOUNDFONT, CONFIG) as renderer:
        renderer.render(b)
        again = renderer.render(a)
    assert np.array_equal(first, again)
    assert np.array_equal(first, render_performance(a, SOUNDFONT, CONFIG))


def test_corrupt_midi_is_counted_not_raised(tmp_path):
    midi = write_corrupt(tmp_path / "bad.mid")
    job = RenderJob("percepiano", "bad", str(midi), "TimGM6mb", str(SOUNDFONT),
                    (str(tmp_path / "bad.flac"),))
    (record,) = run_job(job, CONFIG)
    assert record["status"] == "midi_error" and "bad.mid" in record["error"]
    assert not (tmp_path / "bad.flac").exists()


def test_missing_soundfont_is_skipped_with_a_log_line(caplog, tmp_path):
    found = available_soundfonts(["TimGM6mb", str(tmp_path / "nope.sf2")])
    assert [name for name, _ in found] == ["TimGM6mb"]
    assert "nope.sf2" in caplog.text


def test_windows_of_a_long_performance(tmp_path):
    assert plan_windows(45.0, 20.0, 10.0) == [(0.0, 20.0), (10.0, 30.0), (20.0, 40.0)]
    assert plan_windows(45.0, 20.0, 10.0, max_windows=2) == [(0.0, 20.0), (10.0, 30.0)]
    assert plan_windows(8.0, 20.0, 10.0) == [(0.0, 8.0)]
    midi = write_midi(tmp_path / "p.mid", simple_notes(n=12, ioi=0.5, dur=0.4))  # 5.9 s
    manifest = pd.DataFrame({"file": ["p.mid", "x.txt"], "duration_sec": [5.9, 0.0],
                             "status": ["ok", "ok"], "role": ["performance", "other"]})
    (job,) = maestro_jobs(manifest, tmp_path, [("TimGM6mb", SOUNDFONT)], tmp_path / "out",
                          window_sec=2.0, hop_sec=1.5, max_windows_per_performance=3)
    assert job.windows == ((0.0, 2.0), (1.5, 3.5), (3.0, 5.0))
    records = run_job(job, CONFIG)
    assert [r["status"] for r in records] == ["ok"] * 3
    lengths = {len(sf.read(r["file"])[0]) for r in records}
    assert lengths == {2 * SR}
    assert midi.exists()


# ----------------------------------------------------------------------------- augmentation

def test_augment_chain_is_seeded_and_leaves_global_random_state(piano):
    chain = aug.augment_chain(p=1.0)
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    a = chain(piano, SR, seed=7)
    after = (random.random(), np.random.rand())
    assert after == before  # the caller's random streams did not move
    assert np.array_equal(a, chain(piano, SR, seed=7))
    assert not np.array_equal(a, chain(piano, SR, seed=8))
    assert a.shape == piano.shape and np.isfinite(a).all()
    assert np.max(np.abs(a)) <= 10 ** (-1 / 20) + 1e-6
    with pytest.raises(ValueError, match="above 20 dB"):
        aug.augment_chain(snr_db=[5, 30])


def test_synthetic_impulse_response_decays(tmp_path):
    ir = aug.synth_impulse_response(SR, rt60=0.5, drr_db=8.0, seed=0)
    assert ir[0] == 1.0 and len(ir) == SR // 2
    assert np.sum(ir[1:] ** 2) == pytest.approx(10 ** (-0.8), rel=1e-3)
    early, late = np.sum(ir[1:2400] ** 2), np.sum(ir[-2400:] ** 2)
    assert late < early * 1e-3
    paths = aug.impulse_response_files(tmp_path, rt60s=(0.3,))
    assert np.array_equal(sf.read(paths[0], dtype="float32")[0],
                          aug.synth_impulse_response(SR, 0.3, 8.0, 0))
    paths[0].write_bytes(b"left by other code")  # never reused: every call writes its files
    assert np.array_equal(sf.read(aug.impulse_response_files(tmp_path, rt60s=(0.3,))[0],
                                  dtype="float32")[0], aug.synth_impulse_response(SR, 0.3, 8.0, 0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [paths[0].name]  # no temporary left


def test_each_chain_keeps_its_impulse_responses_in_a_temporary_folder_of_its_own(piano):
    import gc

    a, b = aug.augment_chain(p=1.0), aug.augment_chain(p=1.0)
    folder_a, folder_b = Path(a.ir_folder.name), Path(b.ir_folder.name)
    assert folder_a != folder_b and len(list(folder_a.glob("*.wav"))) == 4
    assert np.array_equal(a(piano, SR, seed=3), b(piano, SR, seed=3))
    del a
    gc.collect()
    assert not folder_a.exists() and folder_b.is_dir()  # removed with its chain


@pytest.mark.parametrize("snr", [3.0, 9.0])
def test_noise_degradation_hits_the_asked_snr(piano, snr):
    noisy = aug.degrade(piano, SR, "noise", seed=1, snr_db=snr)
    assert aug.snr_db(piano, noisy) == pytest.approx(snr, abs=0.2)
    assert np.array_equal(noisy, aug.add_noise(piano, SR, snr, seed=1))


def test_clipping_degradation_clips_the_asked_share(piano):
    clipped = aug.clip(piano, SR, percent=10)
    at_limits = np.mean((clipped == clipped.max()) | (clipped == clipped.min()))
    assert at_limits == pytest.approx(0.10, abs=0.01)
    assert clipped_fraction(clipped) > 0.03 and clipped_fraction(piano) < 0.001


def test_band_limiting_removes_high_frequencies(piano):
    def high_share(y, hz):
        spec = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(len(y), 1 / SR)
        return spec[freqs > hz].sum() / spec.sum()

    low = aug.low_pass(piano, SR, cutoff_hz=1000)
    assert high_share(low, 2000) < 0.1 * high_share(piano, 2000)
    band = aug.band_limit(piano, SR, low_hz=300, high_hz=3400, bit_depth=None)
    assert high_share(band, 5000) < 0.05 * high_share(piano, 5000)
    crushed = aug.band_limit(piano, SR, bit_depth=4)
    assert len(np.unique(crushed)) <= 2 ** 4 + 1


# ----------------------------------------------------------------------------- audio checks

@pytest.mark.parametrize("y, sr, problem", [
    (np.zeros(SR, np.float32), SR, "silent"),
    (np.full(SR, np.nan, np.float32), SR, "NaN"),
    (np.zeros(0, np.float32), SR, "zero length"),
    (np.clip(np.sin(np.linspace(0, 400 * np.pi, SR)) * 3, -1, 1).astype(np.float32), SR, "clipped"),
    (np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32), 16000, "wrong sample rate"),
    (np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32), 0, "invalid sample rate"),
    (np.random.default_rng(0).normal(0, 0.1, 100).astype(np.float32), SR, "too short"),
    (np.random.default_rng(0).normal(0, 0.1, (2, SR)).astype(np.float32), SR, "mono"),
])
def test_bad_audio_gets_a_clear_error(y, sr, problem):
    with pytest.raises(ValueError, match=problem):
        make_encoder("spectral").encode(y, sr)


def test_natural_audio_passes_the_checks(piano):
    sine = np.sin(2 * np.pi * 440 * np.arange(SR) / SR).astype(np.float32) * 0.5
    assert clipped_fraction(sine) == 0.0
    validate_audio(piano, SR, expected_sr=SR)


# ----------------------------------------------------------------------------- spectral encoder

def test_spectral_encoder_shapes_and_determinism(piano):
    enc = make_encoder("spectral")
    out = enc.encode(piano, SR)
    n_frames = 1 + len(piano) // 512
    assert out["pooled"].shape == (len(enc.feature_names),) == (enc.config()["dim"],)
    assert out["pooled"].dtype == np.float32 and np.isfinite(out["pooled"]).all()
    assert out["frames_mel"].shape == (n_frames, 64) and out["frames_cqt"].shape == (n_frames, 88)
    again = enc.encode(piano.copy(), SR)
    assert all(np.array_equal(out[k], again[k]) for k in out)
    louder = enc.encode(piano * 0.5, SR)["pooled"]  # absolute dB: level is kept, not normalised
    names = enc.feature_names
    assert louder[names.index("rms_db_mean")] == pytest.approx(
        out["pooled"][names.index("rms_db_mean")] - 6.02, abs=0.05)
    with pytest.raises(ValueError, match="unknown parameters"):
        make_encoder("spectral", {"n_mel": 32})


# ----------------------------------------------------------------------------- MERT code path

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny HuBERT-style model and feature extractor saved like a downloaded MERT folder."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=4, vocab_size=8)
    folder = tmp_path_factory.mktemp("tiny_mert")
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return folder


def test_tiny_mert_end_to_end_offline(tiny_model, piano, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = make_encoder("mert", {"model": str(tiny_model), "chunk_sec": 0.8, "min_chunk_sec": 0.3,
                                "store_layers": True, "store_frames": True})
    assert enc.sample_rate == 16000 and enc.layers == [0, 1, 2]
    out = enc.encode(piano, SR)  # 24 kHz in, resampled to the extractor's 16 kHz
    n16 = round(len(piano) * 16000 / SR)
    n_frames = out["frames_hidden"].shape[0]
    assert abs(n_frames - n16 / 320) <= 4  # 20 ms frames, a frame or so lost per chunk
    assert out["pooled"].shape == (64,) and out["layers_pooled"].shape == (3, 64)
    assert np.allclose(out["layers_pooled"][:, :32].mean(0), out["pooled"][:32], atol=1e-4)
    assert np.array_equal(out["pooled"], enc.encode(piano, SR)["pooled"])
    cfg = enc.config()
    assert cfg["dim"] == 64 and cfg["model_type"] == "hubert" and cfg["weights"] == [1 / 3] * 3
    weighted = make_encoder("mert", {"model": str(tiny_model), "layers": [2],
                                     "layer_weights": [1.0]})
    assert weighted.encode(piano, SR)["pooled"].shape == (64,)


@pytest.mark.parametrize("seconds, chunk, min_chunk, expected", [
    (2.0, 0.8, 0.3, [0.8, 0.8, 0.4]),  # last chunk long enough: kept
    (2.0, 0.8, 0.5, [0.8, 1.2]),  # short last chunk merged into the one before it
    (1.0, 0.8, 0.5, [1.0]),  # two chunks -> one
    (0.5, 0.8, 0.3, [0.5]),
])
def test_mert_chunking_covers_the_audio(tiny_model, seconds, chunk, min_chunk, expected):
    enc = make_encoder("mert", {"model": str(tiny_model), "chunk_sec": chunk,
                                "min_chunk_sec": min_chunk})
    y = np.arange(int(seconds * 16000), dtype=np.float32)
    chunks = enc._chunks(y)
    assert [len(c) / 16000 for c in chunks] == pytest.approx(expected)
    assert np.array_equal(np.concatenate(chunks), y)


def test_missing_weights_fail_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for model in (str(tmp_path / "MERT-v1-95M"), "m-a-p/MERT-v1-95M"):
        start = time.perf_counter()
        with pytest.raises(WeightsNotFoundError) as err:
            make_encoder("mert", {"model": model})
        assert time.perf_counter() - start < 5
        message = str(err.value)
        assert "huggingface-cli download" in message and "git lfs" in message
        assert "encode_audio.mert.model" in message
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(WeightsNotFoundError, match="no weight files"):
        make_encoder("mert", {"model": str(tmp_path / "empty")})


# ----------------------------------------------------------------------------- audio-only models

def test_mlp_head_early_stops_on_validation_and_is_deterministic():
    from config_factory import mlp_settings
    from pianoeval.audio_only.model import MLPHead

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 10))
    Y = np.tanh(X[:, :3] @ rng.normal(size=(3, 19))) * 0.1 + 0.5
    kw = mlp_settings(hidden=16, max_epochs=40, patience=5, n_seeds=2, batch_size=32)
    a = MLPHead(**kw).fit(X[:80], Y[:80], X[80:100], Y[80:100])
    b = MLPHead(**kw).fit(X[:80], Y[:80], X[80:100], Y[80:100])
    pa = a.predict(X[100:])
    assert pa.shape == (20, 19) and np.array_equal(pa, b.predict(X[100:]))
    assert all(1 <= e <= 40 for e in a.epochs_)
    assert (pa >= Y.min(0) - 1e-9).all() and (pa <= Y.max(0) + 1e-9).all()
