"""Offline audio -> MIDI piano transcription for `pianoeval assess`.

Two modes, both with weights that ship inside their wheels (no download at run time):

- ``"accurate"``: Transkun 2.0.1 (Yan & Duan, semi-CRF over note intervals; notes, velocities
  and the sustain/soft pedal as CC64/CC67 events). Run through its Python API on 44.1 kHz mono
  audio in 16 s segments every 8 s (the bundled model configuration).
- ``"fast"``: Basic Pitch 0.4.0 (Spotify) through onnxruntime with the bundled ONNX model (never
  TensorFlow); notes and velocities, no pedal.

Both are installed by ``make transcription`` (``--no-deps``: their declared dependencies pull
torchaudio/TensorFlow builds that do not work here; see the Makefile). Each model's notes are
written to a temporary MIDI file and read back with :func:`pianoeval.data.midi.read_midi`, so a
transcription is the same ``Performance`` a MIDI input gives (notes sorted by onset then pitch,
controls by time).

Speed: Transkun's cost is its network (measured: 97 % of the time, the rest the CRF decode and
the note attributes), mostly matrix products. Batching segments does not pay on CPU: the decode
of a segment needs the end of the previous one, and a forward pass over two segments at once
took 7 % longer per segment than one at a time (one thread). On a CPU with native bfloat16
(``avx512_bf16``/``amx_bf16`` in /proc/cpuinfo) the network runs under bfloat16 autocast,
about 1.4-1.7x faster with the same notes on the clips measured (benchmarks/transcription.md);
``ACCURATE_BF16`` forces it on or off. ``threads`` sets torch's / onnxruntime's threads.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from pianoeval.data.midi import MidiError, Performance, read_midi

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
MODES = ("accurate", "fast")
SILENCE_DBFS = -60.0  # a file whose sample peak is below this is taken as silent

TRANSKUN_SR = 44100
BASIC_PITCH_SR = 22050  # basic_pitch.constants.AUDIO_SAMPLE_RATE
BASIC_PITCH_BATCH = 8  # 2 s windows per onnxruntime call
ACCURATE_BF16: bool | None = None  # None: bfloat16 autocast where the CPU has native bf16


class AudioError(ValueError):
    """An audio file that cannot be transcribed; the message names the file and the problem."""


# ----------------------------------------------------------------------------- audio

def load_audio(path: str | Path, sr: int) -> np.ndarray:
    """Mono float32 samples of ``path`` resampled to ``sr`` (librosa).

    Raises AudioError naming the file when it is missing, empty, unreadable, has no samples or
    non-finite samples, or is silent (sample peak below ``SILENCE_DBFS``).
    """
    import librosa

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():  # librosa warns before falling back to audioread
            warnings.simplefilter("ignore")
            y, _ = librosa.load(str(path), sr=sr, mono=True)
    except Exception as exc:  # soundfile/audioread raise many types
        raise AudioError(f"{path}: cannot read audio ({type(exc).__name__}: {exc})") from exc
    if y.size == 0:
        raise AudioError(f"{path}: no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak < 10 ** (SILENCE_DBFS / 20):
        level = f"{20 * math.log10(peak):.1f} dBFS" if peak > 0 else "digital silence"
        raise AudioError(f"{path}: audio is silent (peak {level}, below {SILENCE_DBFS:.0f} dBFS): "
                         "nothing to transcribe")
    return np.ascontiguousarray(y, dtype=np.float32)


# ----------------------------------------------------------------------------- transcription

def transcribe(path: str | Path, mode: str = "accurate", *, threads: int | None = None
               ) -> tuple[Performance, dict]:
    """Transcribe a piano recording: (Performance, info).

    ``info`` = ``{"model": "transkun 2.0.1", "mode": mode, "seconds": wall seconds of this call
    (audio decoding, model loading the first time, inference), "audio_sec": audio length}``.
    ``threads``: CPU threads for the model (torch / onnxruntime) during this call; None keeps
    torch's setting (onnxruntime: its default). Raises AudioError naming the file for audio that
    cannot be read, silent audio, a transcriber that is not installed or fails; ValueError for
    an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"transcription mode must be one of {', '.join(MODES)}, not {mode!r}")
    path = Path(path)
    start = time.perf_counter()
    sr = TRANSKUN_SR if mode == "accurate" else BASIC_PITCH_SR
    y = load_audio(path, sr)
    try:
        if mode == "accurate":
            midi, name = _transkun_midi(y, threads), f"transkun {_version('transkun')}"
        else:
            midi, name = _basic_pitch_midi(y, threads), f"basic-pitch {_version('basic-pitch')}"
    except ImportError as exc:
        package = "transkun" if mode == "accurate" else "basic-pitch"
        raise AudioError(f"{path}: cannot transcribe in {mode} mode: {package} is not installed "
                         f"or broken ({exc}); run `make transcription`") from exc
    except AudioError:
        raise
    except Exception as exc:  # whatever the model raises: report it against the file
        raise AudioError(f"{path}: {mode} transcription failed "
                         f"({type(exc).__name__}: {exc})") from exc
    with tempfile.TemporaryDirectory(prefix="pianoeval-transcribe-") as tmp:
        out = Path(tmp) / f"{path.stem}.mid"
        midi.write(str(out))
        try:
            perf = read_midi(out)
        except MidiError as exc:
            raise AudioError(f"{path}: the transcribed MIDI cannot be read ({exc})") from exc
    info = {"model": name, "mode": mode, "seconds": round(time.perf_counter() - start, 3),
            "audio_sec": round(len(y) / sr, 3)}
    return perf, info


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- transkun

def _melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk"):
    """torchaudio.functional.melscale_fbanks (HTK scale, no norm: what Transkun asks for),
    restated in torch; see _transkun_model for why."""
    import torch

    if norm is not None or mel_scale != "htk":
        raise NotImplementedError("only the HTK mel scale without norm is restated here")
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_min, m_max = (2595.0 * math.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    f_pts = 700.0 * (10.0 ** (torch.linspace(m_min, m_max, n_mels + 2) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down, up = -slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)


@functools.lru_cache(maxsize=1)
def _transkun_model():
    """Transkun 2.0 built from the configuration and checkpoint bundled in its wheel.

    torchaudio: Transkun's ``MelSpectrum.__init__`` imports torchaudio only to fill its
    ``freq2mels`` buffer, which the checkpoint then overwrites. PyPI has no torchaudio for torch
    2.13 that loads on a CPU-only torch (2.11.1 is the newest, built against CUDA torch), so
    while the model is constructed (and only then) ``sys.modules["torchaudio"]`` is a stand-in
    holding the one function used, restated above; ``patch.dict`` puts sys.modules back
    afterwards, so no other code sees it. The load below must then find ``freq2mels`` in the
    checkpoint (checked: our restated matrix equals the stored one exactly).
    """
    import types
    from unittest import mock

    import moduleconf
    import torch
    import transkun

    with warnings.catch_warnings():  # its CRF module applies torch.jit.script (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        import transkun.ModelTransformer  # noqa: F401  (imported before the stand-in goes in)

    folder = Path(transkun.__file__).parent / "pretrained"
    conf_manager = moduleconf.parseFromFile(str(folder / "2.0.conf"))
    model_class = conf_manager["Model"].module.TransKun
    stand_in = types.ModuleType("torchaudio")
    stand_in.functional = types.SimpleNamespace(melscale_fbanks=_melscale_fbanks)
    with mock.patch.dict(sys.modules, {"torchaudio": stand_in}):
        model = model_class(conf=conf_manager["Model"].config)
    checkpoint = torch.load(folder / "2.0.pt", map_location="cpu", weights_only=True)
    state = checkpoint.get("best_state_dict", checkpoint.get("state_dict"))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise RuntimeError(f"transkun checkpoint lacks {result.missing_keys}")
    return model.eval()


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _transkun_midi(y: np.ndarray, threads: int | None):
    """pretty_midi.PrettyMIDI of 44.1 kHz mono samples (notes, CC64/CC67 pedal)."""
    import torch
    from transkun.Data import writeMidi

    model = _transkun_model()
    bf16 = _cpu_has_bf16() if ACCURATE_BF16 is None else bool(ACCURATE_BF16)
    x = torch.from_numpy(y)[:, None]  # (samples, channels), as transkun's readAudio gives
    with _torch_threads(threads), torch.inference_mode(), warnings.catch_warnings(), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        # its backbone wraps layers in torch.utils.checkpoint (a UserWarning without gradients)
        # and its CRF decode calls torch.jit.script (a DeprecationWarning in torch 2.13)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        notes = model.transcribe(x)  # segment size / hop from the bundled conf (16 s / 8 s)
    return writeMidi(notes)


# ----------------------------------------------------------------------------- basic pitch

@contextlib.contextmanager
def _quiet_root_logger():
    """basic_pitch's __init__ reports each missing optional backend (TensorFlow, CoreML,
    TFLite) with ``logging.warning``, which would also configure the root logger as a side
    effect; drop those records and keep the root logger as it was."""
    root = logging.getLogger()
    handler, drop = logging.NullHandler(), (lambda record: False)
    root.addHandler(handler)  # so logging.warning does not call basicConfig
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(handler)


@functools.lru_cache(maxsize=4)
def _basic_pitch_session(threads: int | None):
    import onnxruntime as ort

    with _quiet_root_logger():
        from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    model_path = build_icassp_2022_model_path(FilenameSuffix.onnx)
    return ort.InferenceSession(str(model_path), sess_options=options,
                                providers=["CPUExecutionProvider"])


def _basic_pitch_midi(y: np.ndarray, threads: int | None):
    """pretty_midi.PrettyMIDI of 22.05 kHz mono samples: basic_pitch.inference.run_inference and
    predict's note extraction (its defaults), on samples instead of a file path and with the 2 s
    windows batched through onnxruntime."""
    with _quiet_root_logger():
        from basic_pitch import note_creation
        from basic_pitch.constants import AUDIO_N_SAMPLES, AUDIO_SAMPLE_RATE, FFT_HOP
        from basic_pitch.inference import unwrap_output, window_audio_file
    session = _basic_pitch_session(threads)
    n_overlapping_frames = 30  # as run_inference
    overlap_len = n_overlapping_frames * FFT_HOP
    hop_size = AUDIO_N_SAMPLES - overlap_len
    assert AUDIO_SAMPLE_RATE == BASIC_PITCH_SR, AUDIO_SAMPLE_RATE
    padded = np.concatenate([np.zeros(overlap_len // 2, np.float32), y])
    windows = np.stack([w for w, _ in window_audio_file(padded, hop_size)]).astype(np.float32)
    names = ["StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0"]
    parts: dict[str, list] = {"note": [], "onset": [], "contour": []}
    for i in range(0, len(windows), BASIC_PITCH_BATCH):
        outs = session.run(names, {"serving_default_input_2:0": windows[i:i + BASIC_PITCH_BATCH]})
        for key, out in zip(("note", "onset", "contour"), outs):
            parts[key].append(out)
    output = {k: unwrap_output(np.concatenate(v), len(y), n_overlapping_frames)
              for k, v in parts.items()}
    min_note_len = int(np.round(127.70 / 1000 * (AUDIO_SAMPLE_RATE / FFT_HOP)))  # predict's
    midi, _ = note_creation.model_output_to_notes(
        output, onset_thresh=0.5, frame_thresh=0.3, min_note_len=min_note_len,
        min_freq=None, max_freq=None, multiple_pitch_bends=False, melodia_trick=True,
        midi_tempo=120)
    return midi
