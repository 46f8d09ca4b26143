"""Transcription for `pianoeval assess`: accuracy and speed -> benchmarks/transcription.md.

``--n`` excerpts (``--excerpt-sec`` long, from the middle of each performance) of ASAP
performance MIDIs spread over the sorted list (data/raw/maestro, the ingested ASAP mirror; else
the mirror itself) are rendered with FluidSynth at 44.1 kHz (params.yaml's render settings,
``--soundfont``), transcribed in each mode of src/pianoeval/assess/transcribe.py and scored
against the excerpt's MIDI with mir_eval (50 ms onset tolerance):

- note F1 on onsets only (``offset_ratio=None``), and with offsets (mir_eval's default 20 % /
  50 ms) against two references: offsets extended while the sustain pedal is down (the MAESTRO
  convention: a pedalled note sounds until the pedal lifts or the key is struck again, which is
  what the rendering plays) and the MIDI key releases as they are;
- mean absolute onset error (ms) and Pearson correlation of velocities over onset-matched notes
  (renderings are loudness-normalised, so velocities can only agree up to a scale);
- seconds of transcription per minute of audio (model loading excluded, reported apart).

When the accurate mode runs under bfloat16 autocast (CPUs with native bf16), an
``accurate-fp32`` row runs the same model in float32 as the reference for that shortcut.

    .venv/bin/python benchmarks/transcription.py [--n 3] [--excerpt-sec 30] [--threads N]
"""
import argparse
import dataclasses
import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from pianoeval.assess import transcribe as tr
from pianoeval.audio.render import (RenderConfig, normalize_loudness, render_performance,
                                    resolve_soundfont, spread_pick)
from pianoeval.data.midi import CONTROL_DTYPE, SUSTAIN_CC, Performance, read_midi
from pianoeval.params import load_params

sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402  (benchmarks/run.py: the machine description)

ROOT = Path(__file__).resolve().parents[1]
SR = tr.TRANSKUN_SR
PEDALS = (64, 66, 67)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def performances(n: int, min_sec: float) -> list[tuple[Path, float, str]]:
    """(MIDI path, duration, name) of ``n`` performances of at least ``min_sec``, spread evenly over
    the sorted list (so several composers are sampled)."""
    raw = ROOT / "data" / "raw" / "maestro"
    if (raw / "manifest.csv").is_file():
        m = pd.read_csv(raw / "manifest.csv")
        ok = m[(m["status"] == "ok") & (m["role"] == "performance")
               & (m["duration_sec"] >= min_sec)].sort_values("file")
        return spread_pick([(raw / f, float(d), str(Path(f).with_suffix("")))
                            for f, d in zip(ok["file"], ok["duration_sec"])], n)
    mirror = Path(load_params("ingest", ROOT / "params.yaml")["mirror"])
    mirror = (mirror if mirror.is_absolute() else ROOT / mirror) / "asap"
    files = sorted(p for p in mirror.rglob("*.mid") if p.name != "midi_score.mid")
    if not files:
        sys.exit(f"no ASAP performance MIDIs under {raw} or {mirror}")
    picked, step = [], max(1, len(files) // max(n, 1))
    for path in files[::step]:  # spread, skipping performances that are too short
        duration = read_midi(path).duration_sec
        if duration >= min_sec:
            picked.append((path, duration, str(path.relative_to(mirror).with_suffix(""))))
        if len(picked) == n:
            break
    return picked


def excerpt(perf: Performance, start: float, length: float) -> Performance:
    """Notes with onset in [start, start + length), shifted to 0 and cut at ``length``; the
    pedal controllers' state at ``start`` restated at 0, their events inside, all released at
    ``length`` (so the rendering's tail decays and reference offsets are defined)."""
    n, c = perf.notes, perf.controls
    notes = n[(n["onset_sec"] >= start) & (n["onset_sec"] < start + length)].copy()
    notes["onset_sec"] -= start
    notes["duration_sec"] = np.minimum(notes["duration_sec"], length - notes["onset_sec"])
    rows = []
    for number in PEDALS:
        own = c[c["number"] == number]
        before = own[own["time_sec"] < start]
        if len(before) and before["value"][-1] > 0:
            rows.append((0.0, number, int(before["value"][-1])))
        inside = own[(own["time_sec"] >= start) & (own["time_sec"] < start + length)]
        rows += [(float(t) - start, number, int(v)) for t, v in zip(inside["time_sec"],
                                                                     inside["value"])]
        rows.append((length, number, 0))
    controls = np.array(sorted(rows, key=lambda r: r[0]), dtype=CONTROL_DTYPE)
    return Performance(notes=notes, controls=controls)


def pedal_extended_offsets(perf: Performance) -> np.ndarray:
    """Note offsets, a note released while CC64 >= 64 lasting until the pedal lifts or its key
    is struck again."""
    notes, c = perf.notes, perf.controls
    sustain = c[c["number"] == SUSTAIN_CC]
    presses, down_at = [], None
    for t, v in zip(sustain["time_sec"], sustain["value"]):
        if v >= 64 and down_at is None:
            down_at = float(t)
        elif v < 64 and down_at is not None:
            presses.append((down_at, float(t)))
            down_at = None
    if down_at is not None:
        presses.append((down_at, np.inf))
    off = notes["onset_sec"] + notes["duration_sec"]
    extended = off.copy()
    for d, u in presses:
        inside = (off >= d) & (off < u)
        extended[inside] = np.maximum(extended[inside], u)
    for i in range(len(notes)):  # until the same key is struck again
        later = notes["onset_sec"][(notes["pitch"] == notes["pitch"][i])
                                   & (notes["onset_sec"] > notes["onset_sec"][i])]
        if len(later):
            extended[i] = min(extended[i], later.min())
    return np.maximum(extended, off)


def scores(ref: Performance, est: Performance, ref_offsets: np.ndarray) -> dict:
    import mir_eval

    def hz(p):
        return 440.0 * 2.0 ** ((p - 69) / 12)

    r, e = ref.notes, est.notes
    ri = np.stack([r["onset_sec"], np.maximum(ref_offsets, r["onset_sec"] + 1e-3)], 1)
    ei = np.stack([e["onset_sec"], e["onset_sec"] + np.maximum(e["duration_sec"], 1e-3)], 1)
    out = {"n_ref": len(r), "n_est": len(e)}
    if len(e) == 0:
        return {**out, "P": 0.0, "R": 0.0, "F1": 0.0, "F1_offset": 0.0, "F1_offset_key": 0.0,
                "onset_mae_ms": np.nan, "velocity_r": np.nan}
    p, rec, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ri, hz(r["pitch"]), ei, hz(e["pitch"]), offset_ratio=None)
    f1_off = mir_eval.transcription.precision_recall_f1_overlap(
        ri, hz(r["pitch"]), ei, hz(e["pitch"]))[2]
    ri_key = np.stack([r["onset_sec"], r["onset_sec"] + np.maximum(r["duration_sec"], 1e-3)], 1)
    f1_off_key = mir_eval.transcription.precision_recall_f1_overlap(
        ri_key, hz(r["pitch"]), ei, hz(e["pitch"]))[2]
    pairs = np.array(mir_eval.transcription.match_notes(
        ri, hz(r["pitch"]), ei, hz(e["pitch"]), offset_ratio=None), dtype=int).reshape(-1, 2)
    mae = float(np.mean(np.abs(r["onset_sec"][pairs[:, 0]] - e["onset_sec"][pairs[:, 1]])) * 1e3)
    rv, ev = r["velocity"][pairs[:, 0]], e["velocity"][pairs[:, 1]]
    vel_r = (float(np.corrcoef(rv, ev)[0, 1]) if len(pairs) >= 3 and rv.std() > 0 and ev.std() > 0
             else np.nan)
    return {**out, "P": p, "R": rec, "F1": f1, "F1_offset": f1_off, "F1_offset_key": f1_off_key,
            "onset_mae_ms": mae,
            "velocity_r": vel_r}


def run_mode(mode: str, wav: Path, threads: int | None) -> tuple[Performance, dict]:
    """transcribe() in ``mode``; ``accurate-fp32`` is the accurate mode without bf16."""
    if mode != "accurate-fp32":
        return tr.transcribe(wav, mode, threads=threads)
    before, tr.ACCURATE_BF16 = tr.ACCURATE_BF16, False
    try:
        perf, info = tr.transcribe(wav, "accurate", threads=threads)
    finally:
        tr.ACCURATE_BF16 = before
    return perf, {**info, "mode": mode}


def warm(threads: int | None) -> dict[str, float]:
    """Load both models once (timed) so the per-excerpt timings exclude loading."""
    import torch

    start = time.perf_counter()
    with tr._torch_threads(threads):
        tr._transkun_model()
    t_transkun = time.perf_counter() - start
    start = time.perf_counter()
    tr._basic_pitch_session(threads)
    with tr._quiet_root_logger():
        import basic_pitch.note_creation  # noqa: F401
    return {"transkun": t_transkun, "basic-pitch": time.perf_counter() - start,
            "torch_threads": threads or torch.get_num_threads()}


def fmt(x, digits=3) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3, help="excerpts (default 3)")
    parser.add_argument("--excerpt-sec", type=float, default=30.0)
    parser.add_argument("--soundfont", default="FluidR3_GM",
                        help="a name known to pianoeval.audio.render or a .sf2/.sf3 path")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the models (default: torch's / onnxruntime's)")
    parser.add_argument("--modes", default="accurate,fast",
                        help="comma-separated; accurate-fp32 is added when bf16 is in use")
    parser.add_argument("--no-fp32", action="store_true", help="skip the accurate-fp32 row")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "transcription.md")
    args = parser.parse_args()

    modes = args.modes.split(",")
    bf16 = tr._cpu_has_bf16() if tr.ACCURATE_BF16 is None else bool(tr.ACCURATE_BF16)
    if "accurate" in modes and bf16 and not args.no_fp32:
        modes.append("accurate-fp32")
    sf_name, sf_path = resolve_soundfont(args.soundfont)
    if sf_path is None:
        sys.exit(f"soundfont {args.soundfont!r} not found")
    render = RenderConfig.from_params(load_params("render", ROOT / "params.yaml"))
    render = dataclasses.replace(render, sample_rate=SR, tail_sec=1.0)
    load_before = load_average()
    loading = warm(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for midi, duration, label in performances(args.n, args.excerpt_sec):
            start = round(max(0.0, (duration - args.excerpt_sec) / 2), 3)
            ref = excerpt(read_midi(midi), start, args.excerpt_sec)
            y = render_performance(ref, sf_path, render, end_sec=args.excerpt_sec + 1.0)
            y, _ = normalize_loudness(y, SR, render.normalize, render.target_dbfs,
                                      render.peak_dbfs)
            wav = Path(tmp) / f"{len(rows)}.wav"
            sf.write(wav, y, SR)
            ref_offsets = pedal_extended_offsets(ref)
            name = f"{label} @{start:.0f}s"
            for mode in modes:
                est, info = run_mode(mode, wav, args.threads)
                row = {"excerpt": name, "mode": mode, "model": info["model"],
                       **scores(ref, est, ref_offsets),
                       "sec_per_min": info["seconds"] / info["audio_sec"] * 60}
                rows.append(row)
                print(f"{name} {mode}: F1 {row['F1']:.3f}, F1 offsets {row['F1_offset']:.3f}, "
                      f"{row['sec_per_min']:.1f} s/min", flush=True)
    table = pd.DataFrame(rows)
    write_markdown(args, table, modes, sf_name, bf16, loading, load_before)
    print(f"wrote {args.out}")


def write_markdown(args, table, modes, sf_name, bf16, loading, load_before) -> None:
    import librosa
    import onnxruntime
    import torch

    cols = ["P", "R", "F1", "F1_offset", "F1_offset_key", "onset_mae_ms", "velocity_r",
            "sec_per_min"]
    lines = [
        "# Transcription benchmark (`pianoeval assess` audio input)", "",
        f"Generated {datetime.date.today()} by `benchmarks/transcription.py --n {args.n} "
        f"--excerpt-sec {args.excerpt_sec:g}"
        + (f" --threads {args.threads}" if args.threads else "") + "`.", "",
        f"- Machine: {machine()}; load average {load_before} at the start, {load_average()} at "
        "the end (other jobs share the CPU, so timings are upper bounds).",
        f"- torch {torch.__version__} (threads: {loading['torch_threads']}), onnxruntime "
        f"{onnxruntime.__version__}, librosa {librosa.__version__}; accurate mode bf16 "
        f"autocast: {'on' if bf16 else 'off'}.",
        f"- Audio: {args.n} excerpt(s) of {args.excerpt_sec:g} s from the middle of ASAP "
        f"performances, rendered with {sf_name} at {SR} Hz (params.yaml render settings, RMS "
        "normalised, 1 s tail).",
        f"- Model loading (excluded from the timings): transkun {loading['transkun']:.1f} s, "
        f"basic-pitch {loading['basic-pitch']:.1f} s.",
        "- F1: mir_eval note F1, 50 ms onset tolerance; *F1 off.* also asks offsets within "
        "20 % / 50 ms of the reference's, *pedal* extended while CC64 >= 64 (MAESTRO "
        "convention), *key* the MIDI key releases. Onset MAE and velocity r (Pearson) over "
        "onset-matched notes.",
        "- s/min: wall seconds per minute of audio. Transkun runs 16 s segments every 8 s over "
        "the audio padded by 8 s at each end, ceil((duration + 16) / 8) segments, so a short "
        "excerpt costs more per minute than a long one (21 s: 5 segments; 61 s: 10).", "",
        "## Mean over excerpts", "",
        "| mode | model | notes ref / est | P | R | F1 | F1 off. pedal | F1 off. key | "
        "onset MAE ms | velocity r | s per min audio |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode in modes:
        t = table[table["mode"] == mode]
        m = t[cols].mean()
        lines.append(f"| {mode} | {t['model'].iloc[0]} | {t['n_ref'].sum()} / {t['n_est'].sum()} "
                     f"| {fmt(m['P'])} | {fmt(m['R'])} | {fmt(m['F1'])} | {fmt(m['F1_offset'])} "
                     f"| {fmt(m['F1_offset_key'])} "
                     f"| {fmt(m['onset_mae_ms'], 1)} | {fmt(m['velocity_r'], 2)} "
                     f"| {fmt(m['sec_per_min'], 1)} |")
    lines += ["", "## Per excerpt", "",
              "| excerpt | mode | notes ref / est | F1 | F1 off. pedal | F1 off. key "
              "| onset MAE ms | velocity r | s per min audio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.excerpt} | {r.mode} | {r.n_ref} / {r.n_est} | {fmt(r.F1)} "
                     f"| {fmt(r.F1_offset)} | {fmt(r.F1_offset_key)} "
                     f"| {fmt(r.onset_mae_ms, 1)} "
                     f"| {fmt(r.velocity_r, 2)} "
                     f"| {fmt(r.sec_per_min, 1)} |")
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
