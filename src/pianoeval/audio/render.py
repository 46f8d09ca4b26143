"""MIDI -> audio with FluidSynth (pyfluidsynth + libfluidsynth), driven by our Performance arrays.

Why not ``pretty_midi.Instrument.fluidsynth``: it does forward control changes (so it would
honour the sustain pedal), but it takes pretty_midi objects rather than our ``Performance``,
pulls 16-bit samples through ``fluid_synth_write_s16`` (FluidSynth dithers those with a noise
table: an extra noise floor and one more thing to keep deterministic), renders stereo and keeps
only the left channel, forwards every controller (volume, pan and effect sends of the score
renderings would make renders inconsistent) and adds a fixed 1 s of silence. Here every note
on/off and the chosen pedal controllers (sustain 64, sostenuto 66, soft 67) are sent to a
``fluidsynth.Synth`` at their sample position, and float samples are written straight into
NumPy buffers with ``fluid_synth_write_float`` (no dither), left and right averaged to mono.

Determinism: a fresh synthesizer per rendering (see ``Renderer``), one CPU core per synth, no
clock and no random source involved, so the same input gives bit-identical samples whatever
was rendered before.

Loudness: ``normalize="rms"`` scales each rendering so that its gated RMS level (BS.1770-style
400 ms blocks with 75 % overlap, absolute gate -70 dBFS, relative gate -10 dB, no K-weighting
filter, so "LUFS-ish" in dBFS) equals ``target_dbfs``, then lowers the gain if the sample peak
would exceed ``peak_dbfs``: every rendering is equally loud, so a forte and a piano performance
differ only in timbre and in their dynamics within the segment. ``"soundfont"`` applies one
gain per soundfont, the one that brings a fixed mezzo-forte reference passage to
``target_dbfs`` (lowered for a rendering only if its peak would exceed ``peak_dbfs``), so
soundfonts are levelled but loudness differences between performances survive. ``"peak"``
scales the sample peak to ``peak_dbfs``; ``"none"`` keeps the synth's level (only lowered if it
would clip).
"""
from __future__ import annotations

import ctypes
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pianoeval.data.midi import Performance

log = logging.getLogger(__name__)

# Named soundfonts; anything else in the params list is taken as a path to a .sf2/.sf3 file.
DEBIAN_FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DEBIAN_MUSESCORE = Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3")

NOTE_OFF, CONTROL, NOTE_ON = 0, 1, 2  # event order at the same sample


def _pretty_midi_soundfont() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "TimGM6mb.sf2"


def known_soundfonts() -> dict[str, Path | None]:
    return {"TimGM6mb": _pretty_midi_soundfont(), "FluidR3_GM": DEBIAN_FLUIDR3,
            "MuseScore_General_Full": DEBIAN_MUSESCORE}


def resolve_soundfont(spec: str) -> tuple[str, Path | None]:
    """(name, path) of a named soundfont or a .sf2/.sf3 path (name = file stem); path None when
    the file is missing."""
    known = known_soundfonts()
    if spec in known:
        path = known[spec]
        return spec, (path if path is not None and path.is_file() else None)
    path = Path(spec).expanduser()
    return path.stem, (path if path.is_file() else None)


def available_soundfonts(specs: list[str]) -> list[tuple[str, Path]]:
    """The soundfonts of ``specs`` that exist; a missing one is skipped with a log line."""
    found, names = [], set()
    for spec in specs:
        name, path = resolve_soundfont(str(spec))
        if path is None:
            log.warning("soundfont %r not found: skipped (install fluid-soundfont-gm / "
                        "musescore-general-soundfont, or give a .sf2/.sf3 path)", spec)
            continue
        if name in names:
            raise ValueError(f"two soundfonts named {name!r} in {specs}")
        names.add(name)
        found.append((name, path))
    return found


@dataclass(frozen=True)
class RenderConfig:
    sample_rate: int = 24000
    tail_sec: float = 1.0  # rendered after the last note off (release, pedal ring)
    controls: tuple[int, ...] = (64, 66, 67)  # sustain, sostenuto, soft pedal
    program: int = 0  # General MIDI acoustic grand piano
    bank: int = 0
    reverb: bool = False
    chorus: bool = False
    polyphony: int = 256
    synth_gain: float = 0.2
    soft_pedal_attenuation_cb: float = 30.0  # CC67 down: this much quieter (centibels) ...
    soft_pedal_cutoff_cents: float = -1200.0  # ... and this much lower filter cutoff (darker)
    velocity_cutoff_cents: float = -2400.0  # filter cutoff shift at velocity 0 (none at 127)
    normalize: str = "rms"  # rms | soundfont | peak | none
    target_dbfs: float = -23.0
    peak_dbfs: float = -1.0

    @classmethod
    def from_params(cls, params: dict) -> "RenderConfig":
        names = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in params.items() if k in names}
        if "controls" in kwargs:
            kwargs["controls"] = tuple(int(c) for c in kwargs["controls"])
        config = cls(**kwargs)
        if config.normalize not in ("rms", "soundfont", "peak", "none"):
            raise ValueError("render.normalize must be rms, soundfont, peak or none, not "
                             f"{config.normalize!r}")
        return config

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- synthesis

_write_float = None


def _write_float_fn():
    global _write_float
    if _write_float is None:
        import fluidsynth

        fn = fluidsynth._fl.fluid_synth_write_float
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                       ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        _write_float = fn
    return _write_float


# SoundFont generator and modulator source numbers (SF2.01 section 8; fluid_mod.h flags)
GEN_FILTERFC, GEN_ATTENUATION = 8, 48
MOD_VELOCITY, MOD_NONE = 2, 0
MOD_CC, MOD_SWITCH, MOD_NEGATIVE, MOD_GC = 16, 12, 1, 0
FLUID_SYNTH_ADD = 1


def _add_modulators(synth, config: RenderConfig) -> None:
    """Pedal and velocity modulators FluidSynth 2.3 does not apply by default (measured: CC67
    changed nothing; velocity 30 and 120 gave the same spectral centroid with FluidR3_GM and
    TimGM6mb, whose pianos have one velocity layer, so velocity changed loudness only).

    - soft pedal (una corda): CC67 as a switch -> attenuation and a lower filter cutoff;
    - velocity -> filter cutoff: softer notes are darker, as on a real piano.
    """
    import fluidsynth

    add = fluidsynth._fl.fluid_synth_add_default_mod
    add.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    add.restype = ctypes.c_int
    specs = [
        (67, MOD_CC | MOD_SWITCH, GEN_ATTENUATION, config.soft_pedal_attenuation_cb),
        (67, MOD_CC | MOD_SWITCH, GEN_FILTERFC, config.soft_pedal_cutoff_cents),
        (MOD_VELOCITY, MOD_GC | MOD_NEGATIVE, GEN_FILTERFC, config.velocity_cutoff_cents),
    ]
    for source, flags, dest, amount in specs:
        if not amount:
            continue
        mod = fluidsynth.Modulator()
        mod.set_source1(source, flags)
        mod.set_source2(MOD_NONE, MOD_GC)
        mod.set_dest(dest)
        mod.set_amount(float(amount))
        if add(synth.synth, mod.mod, FLUID_SYNTH_ADD) != 0:
            raise RuntimeError(f"FluidSynth refused a modulator (source {source} -> gen {dest})")


def _new_synth(soundfont: Path, config: RenderConfig):
    import fluidsynth

    synth = fluidsynth.Synth(
        gain=float(config.synth_gain), samplerate=float(config.sample_rate), channels=16,
        **{"synth.reverb.active": int(config.reverb), "synth.chorus.active": int(config.chorus),
           "synth.polyphony": int(config.polyphony), "synth.cpu-cores": 1,
           "synth.dynamic-sample-loading": 1, "synth.verbose": 0})
    _add_modulators(synth, config)
    sfid = synth.sfload(str(soundfont))
    if sfid < 0:
        synth.delete()
        raise ValueError(f"{soundfont}: FluidSynth cannot load this soundfont")
    if synth.program_select(0, sfid, config.bank, config.program) != 0:
        synth.delete()
        raise ValueError(f"{soundfont}: no preset bank {config.bank} program {config.program}")
    return synth, sfid


def performance_events(perf: Performance, sample_rate: int, controls=(64, 66, 67)) -> np.ndarray:
    """Note on/off and pedal events as rows (sample, order, kind, a, b), sorted by sample, then
    note off < control < note on, so a repeated note is released before it is struck again."""
    notes, ctl = perf.notes, perf.controls
    ctl = ctl[np.isin(ctl["number"], list(controls))]
    on = np.round(notes["onset_sec"] * sample_rate).astype(np.int64)
    off = np.round((notes["onset_sec"] + notes["duration_sec"]) * sample_rate).astype(np.int64)
    off = np.maximum(off, on + 1)  # a zero-length note still sounds (off after on)
    pitch = np.clip(notes["pitch"], 0, 127)
    vel = np.clip(notes["velocity"], 1, 127)  # velocity 0 would be a note off
    c_at = np.round(ctl["time_sec"] * sample_rate).astype(np.int64)
    rows = np.concatenate([
        np.stack([off, np.full_like(off, NOTE_OFF), pitch, np.zeros_like(off)], 1),
        np.stack([c_at, np.full_like(c_at, CONTROL), ctl["number"],
                  np.clip(ctl["value"], 0, 127)], 1),
        np.stack([on, np.full_like(on, NOTE_ON), pitch, vel], 1),
    ]).astype(np.int64) if len(notes) or len(ctl) else np.empty((0, 4), np.int64)
    rows[:, 0] = np.maximum(rows[:, 0], 0)
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


class Renderer:
    """One soundfont held in memory; renders Performances one after another.

    Every rendering gets a fresh synthesizer: a reused one, even after
    ``fluid_synth_system_reset`` and draining, starts its next rendering with the amplitude
    ramps its voice objects were left with, which changes the first few blocks (measured: 252
    samples differ by up to 3e-4). A fresh synth costs 10-60 ms, and FluidSynth's sample cache
    makes it cheap because this object keeps one "keeper" synth with the soundfont loaded.
    """

    def __init__(self, soundfont: str | Path, config: RenderConfig = RenderConfig()):
        self.soundfont, self.config = Path(soundfont), config
        self._keeper, _ = _new_synth(self.soundfont, config)

    @property
    def reference_gain_db(self) -> float:
        """Gain bringing ``reference_performance()`` to ``config.target_dbfs`` (gated RMS)."""
        if getattr(self, "_ref_gain", None) is None:
            y = self.render(reference_performance())
            level = gated_rms_dbfs(y, self.config.sample_rate)
            self._ref_gain = float(self.config.target_dbfs - level)
        return self._ref_gain

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.delete()
            self._keeper = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def render(self, perf: Performance, end_sec: float | None = None) -> np.ndarray:
        """Raw (not normalised) mono float32 audio of ``perf`` from time 0.

        Length: ``end_sec`` if given, else the last note off plus ``config.tail_sec``.
        """
        config = self.config
        sr = int(config.sample_rate)
        if end_sec is None:
            end_sec = perf.duration_sec + float(config.tail_sec)
        n_total = int(round(end_sec * sr))
        if n_total <= 0:
            raise ValueError(f"nothing to render: length {end_sec:.3f} s")
        events = performance_events(perf, sr, config.controls)
        events = events[events[:, 0] < n_total]
        left = np.zeros(n_total, np.float32)
        right = np.zeros(n_total, np.float32)
        write = _write_float_fn()
        synth, _ = _new_synth(self.soundfont, config)
        try:
            handle, lp, rp = synth.synth, left.ctypes.data, right.ctypes.data
            pos = 0
            for at, kind, a, b in events.tolist():
                if at > pos:
                    write(handle, at - pos, lp, pos, 1, rp, pos, 1)
                    pos = at
                if kind == NOTE_ON:
                    synth.noteon(0, a, b)
                elif kind == NOTE_OFF:
                    synth.noteoff(0, a)
                else:
                    synth.cc(0, a, b)
            if pos < n_total:
                write(handle, n_total - pos, lp, pos, 1, rp, pos, 1)
        finally:
            synth.delete()
        left += right
        left *= np.float32(0.5)
        return left


def render_performance(perf: Performance, soundfont: str | Path,
                       config: RenderConfig = RenderConfig(), end_sec: float | None = None
                       ) -> np.ndarray:
    """Render with a one-off Renderer (see ``Renderer.render``)."""
    with Renderer(soundfont, config) as renderer:
        return renderer.render(perf, end_sec)


# ----------------------------------------------------------------------------- loudness

def gated_rms_dbfs(y: np.ndarray, sr: int, block_sec: float = 0.4, overlap: float = 0.75,
                   abs_gate_dbfs: float = -70.0, rel_gate_db: float = -10.0) -> float:
    """BS.1770-style gated level in dBFS (no K-weighting); -inf when every block is gated."""
    y = np.asarray(y, np.float64)
    block = max(1, int(round(block_sec * sr)))
    hop = max(1, int(round(block * (1 - overlap))))
    if len(y) < block:
        power = np.array([np.mean(y ** 2)]) if len(y) else np.array([0.0])
    else:
        csum = np.concatenate([[0.0], np.cumsum(y ** 2)])
        starts = np.arange(0, len(y) - block + 1, hop)
        power = (csum[starts + block] - csum[starts]) / block
    with np.errstate(divide="ignore"):
        level = 10 * np.log10(power)
    kept = power[level > abs_gate_dbfs]
    if len(kept) == 0:
        return float("-inf")
    rel = 10 * np.log10(np.mean(kept)) + rel_gate_db
    kept = kept[10 * np.log10(kept) > rel]
    return float(10 * np.log10(np.mean(kept)))


def reference_performance() -> Performance:
    """A fixed mezzo-forte passage (scale, chords, pedal) that calibrates a soundfont's level."""
    from pianoeval.data.midi import CONTROL_DTYPE, NOTE_DTYPE

    notes = [(0.25 * i, 0.25, 48 + p, 64) for i, p in enumerate([0, 2, 4, 5, 7, 9, 11, 12] * 2)]
    notes += [(4.0 + t, 1.0, 48 + p + 12 * o, 64) for t in (0.0, 1.0, 2.0)
              for p in (0, 4, 7) for o in (0, 1)]
    arr = np.array(sorted(notes), dtype=NOTE_DTYPE)
    ctl = np.array([(4.0, 64, 127), (7.0, 64, 0)], dtype=CONTROL_DTYPE)
    return Performance(notes=arr, controls=ctl)


def normalize_loudness(y: np.ndarray, sr: int, mode: str = "rms", target_dbfs: float = -23.0,
                       peak_dbfs: float = -1.0, fixed_gain_db: float | None = None
                       ) -> tuple[np.ndarray, float]:
    """Scaled audio and the gain applied (dB). ValueError for silent audio.

    ``mode="soundfont"`` applies ``fixed_gain_db`` (one gain per soundfont, from
    ``Renderer.reference_gain_db``) so loudness differences between performances survive.
    """
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak <= 0 or not np.isfinite(peak):
        raise ValueError("rendering is silent (or non-finite): nothing to normalise")
    ceiling = 10 ** (peak_dbfs / 20)
    if mode == "rms":
        level = gated_rms_dbfs(y, sr)
        if not np.isfinite(level):
            raise ValueError("rendering is silent (every 400 ms block below -70 dBFS)")
        gain = 10 ** ((target_dbfs - level) / 20)
        gain = min(gain, ceiling / peak)
    elif mode == "peak":
        gain = ceiling / peak
    elif mode == "soundfont":
        if fixed_gain_db is None:
            raise ValueError("normalize='soundfont' needs the soundfont's reference gain")
        gain = min(10 ** (fixed_gain_db / 20), ceiling / peak)
    elif mode == "none":
        gain = min(1.0, ceiling / peak)
    else:
        raise ValueError(f"unknown normalisation {mode!r} (have: rms, soundfont, peak, none)")
    return (y * np.float32(gain)).astype(np.float32), float(20 * np.log10(gain))


# ----------------------------------------------------------------------------- windows

def plan_windows(duration_sec: float, window_sec: float, hop_sec: float,
                 max_windows: int | None = None) -> list[tuple[float, float]]:
    """Full windows [start, start + window) every ``hop_sec`` that fit in the performance (a
    performance shorter than one window gives one window of its whole length)."""
    if window_sec <= 0 or hop_sec <= 0:
        raise ValueError("window_sec and hop_sec must be positive")
    if duration_sec <= 0:
        return []
    if duration_sec <= window_sec:
        windows = [(0.0, round(float(duration_sec), 3))]
    else:
        starts = np.arange(0.0, duration_sec - window_sec + 1e-9, hop_sec)
        windows = [(round(float(s), 3), round(float(s + window_sec), 3)) for s in starts]
    return windows[:max_windows] if max_windows is not None else windows


def spread_pick(items: list, n: int | None) -> list:
    """``n`` items evenly spaced over ``items`` (all when n is None or >= len)."""
    if n is None or n >= len(items):
        return list(items)
    if n <= 0:
        return []
    idx = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[i] for i in idx]


# ----------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class RenderJob:
    source: str  # percepiano | maestro
    item: str  # segment name, or the MIDI path relative to the source folder
    midi: str
    soundfont: str
    soundfont_path: str
    outputs: tuple[str, ...]  # one file per window (or one for the whole performance)
    windows: tuple[tuple[float, float], ...] | None = None  # None: whole performance + tail


_RENDERERS: dict[tuple[str, RenderConfig], Renderer] = {}  # per worker process


def _renderer(soundfont: str, config: RenderConfig) -> Renderer:
    key = (soundfont, config)
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(soundfont, config)
    return _RENDERERS[key]


def run_job(job: RenderJob, config: RenderConfig) -> list[dict]:
    """Render one job (one MIDI file with one soundfont); one record per output file. A MIDI
    that cannot be read or rendered gives records with status != ok instead of raising."""
    import time

    import soundfile as sf

    from pianoeval.data.midi import MidiError, read_midi

    base = {"source": job.source, "item": job.item, "soundfont": job.soundfont}
    wins = job.windows or [(0.0, None)]
    records = [{**base, "start_sec": s, "end_sec": e, "file": o, "status": "ok", "error": "",
                "duration_sec": 0.0, "gain_db": float("nan"), "cpu_sec": 0.0}
               for (s, e), o in zip(wins, job.outputs)]
    cpu0 = time.process_time()
    try:
        perf = read_midi(job.midi)
        if len(perf.notes) == 0:
            raise MidiError(f"{job.midi}: no notes")
        end = None if job.windows is None else max(e for _, e in job.windows)
        renderer = _renderer(job.soundfont_path, config)
        y = renderer.render(perf, end_sec=end)
        fixed = renderer.reference_gain_db if config.normalize == "soundfont" else None
        y, gain_db = normalize_loudness(y, config.sample_rate, config.normalize,
                                        config.target_dbfs, config.peak_dbfs, fixed)
    except (MidiError, ValueError) as exc:
        status = "midi_error" if isinstance(exc, MidiError) else "render_error"
        for r in records:
            r.update(status=status, error=str(exc))
        return records
    sr = config.sample_rate
    for r in records:
        if job.windows is None:
            piece = y
            r["end_sec"] = round(len(y) / sr, 6)
        else:
            piece = y[int(round(r["start_sec"] * sr)):int(round(r["end_sec"] * sr))]
        Path(r["file"]).parent.mkdir(parents=True, exist_ok=True)
        sf.write(r["file"], piece, sr, format="FLAC", subtype="PCM_16")
        r["duration_sec"] = round(len(piece) / sr, 6)
        r["gain_db"] = round(gain_db, 4)
    cpu = time.process_time() - cpu0
    for r in records:
        r["cpu_sec"] = cpu / len(records)
    return records


def _run_job_star(args):
    return run_job(*args)


def run_jobs(jobs: list[RenderJob], config: RenderConfig, workers: int = 1,
             progress: bool = True) -> list[dict]:
    """Run jobs in ``workers`` processes (inline for 1), with a tqdm progress bar."""
    from tqdm import tqdm

    records: list[dict] = []
    bar = tqdm(total=len(jobs), desc="render", unit="file", disable=not progress, mininterval=2)
    if workers <= 1:
        for job in jobs:
            records.extend(run_job(job, config))
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            chunk = max(1, min(16, len(jobs) // (workers * 8) or 1))
            for recs in pool.map(_run_job_star, [(j, config) for j in jobs], chunksize=chunk):
                records.extend(recs)
                bar.update()
    bar.close()
    return records


# ----------------------------------------------------------------------------- planning

def percepiano_jobs(manifest, raw: Path, soundfonts: list[tuple[str, Path]], out: Path
                    ) -> list[RenderJob]:
    """One job per (segment, soundfont): performance MIDIs with status ok whose stem parses as a
    segment name; output ``<out>/<soundfont>/<segment>.flac``."""
    from pianoeval.data.segments import parse_segment

    ok = manifest[(manifest["status"] == "ok") & (manifest["role"] == "performance")]
    items = []
    for file in sorted(ok["file"]):
        segment = Path(file).stem.strip()
        try:
            parse_segment(segment)
        except ValueError:
            log.warning("%s is not a segment name: not rendered", file)
            continue
        items.append((segment, raw / file))
    return [RenderJob("percepiano", seg, str(midi), name, str(path),
                      (str(out / name / f"{seg}.flac"),))
            for name, path in soundfonts for seg, midi in items]


def maestro_jobs(manifest, raw: Path, soundfonts: list[tuple[str, Path]], out: Path,
                 window_sec: float, hop_sec: float, max_performances: int | None = None,
                 max_windows_per_performance: int | None = None) -> list[RenderJob]:
    """Windows of the ASAP/MAESTRO performances (status ok, role performance): the first
    ``max_windows_per_performance`` windows of ``max_performances`` performances spread evenly
    over the sorted list (so every composer folder is sampled). Output
    ``<out>/<soundfont>/<file without .mid>/<start ms>-<end ms>.flac``."""
    ok = manifest[(manifest["status"] == "ok") & (manifest["role"] == "performance")]
    ok = ok.sort_values("file")
    rows = spread_pick(list(ok[["file", "duration_sec"]].itertuples(index=False)), max_performances)
    jobs = []
    for name, path in soundfonts:
        for file, duration in rows:
            windows = plan_windows(float(duration), window_sec, hop_sec,
                                   max_windows_per_performance)
            if not windows:
                continue
            stem = Path(file).with_suffix("")
            outs = tuple(
                str(out / name / stem / f"{round(s * 1000):08d}-{round(e * 1000):08d}.flac")
                for s, e in windows)
            jobs.append(RenderJob("maestro", file, str(raw / file), name, str(path), outs,
                                  tuple(windows)))
    return jobs
