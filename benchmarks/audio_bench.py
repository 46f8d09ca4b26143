"""Audio branch timings on this machine -> benchmarks/audio.md.

Rendering speed per soundfont in multiples of real time per core (seconds of audio per CPU
second of one process, and per wall second), determinism of the renderings, and encoding
throughput (segments/s, one process) of the spectral encoder and, for the code path only, of a
tiny random HuBERT-style model through the MERT encoder.

    .venv/bin/python benchmarks/audio_bench.py [--n 40] [--out benchmarks/audio.md]
"""
import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.audio.encoders import make_encoder
from pianoeval.audio.render import (RenderConfig, Renderer, available_soundfonts,
                                    normalize_loudness)
from pianoeval.data.midi import read_midi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from run import machine as hardware  # noqa: E402  (benchmarks/run.py: the machine description)


def machine() -> str:
    """The shared machine description of benchmarks/run.py plus this branch's libraries."""
    import fluidsynth
    import librosa
    import torch

    return (f"{hardware()}, libfluidsynth {fluidsynth.fluid_version and _fluid_version()}, "
            f"librosa {librosa.__version__}, torch {torch.__version__}")


def _fluid_version() -> str:
    import ctypes

    import fluidsynth

    v = [ctypes.c_int() for _ in range(3)]
    fluidsynth._fl.fluid_version(*(ctypes.byref(x) for x in v))
    return ".".join(str(x.value) for x in v)


def segment_midis(n: int) -> list[Path]:
    raw = ROOT / "data" / "raw" / "percepiano"
    manifest = pd.read_csv(raw / "manifest.csv")
    files = sorted(manifest.loc[(manifest["status"] == "ok") & (manifest["role"] == "performance"),
                                "file"])
    idx = np.linspace(0, len(files) - 1, n).round().astype(int)
    return [raw / files[i] for i in idx]


def bench_render(midis, soundfonts, config):
    perfs = [read_midi(p) for p in midis]
    rows, audio = [], {}
    for name, path in soundfonts:
        with Renderer(path, config) as renderer:
            renderer.render(perfs[0])  # warm: dynamic sample loading of the piano preset
            wall0, cpu0 = time.perf_counter(), time.process_time()
            ys = [renderer.render(p) for p in perfs]
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            same = all(np.array_equal(renderer.render(p), y) for p, y in zip(perfs[:5], ys[:5]))
        seconds = sum(len(y) for y in ys) / config.sample_rate
        rows.append((name, len(ys), seconds, cpu, wall, same))
        audio[name] = [normalize_loudness(y, config.sample_rate)[0] for y in ys]
    return rows, audio


def bench_encoder(encoder, ys, sr):
    encoder.encode(ys[0], sr)  # warm (imports, numba/torch first-call costs)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for y in ys:
        encoder.encode(y, sr)
    return len(ys) / (time.perf_counter() - wall0), len(ys) / (time.process_time() - cpu0)


def tiny_mert(folder: Path):
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=4, vocab_size=8)
    HubertModel(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    return make_encoder("mert", {"model": str(folder)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40, help="segments per soundfont")
    parser.add_argument("--soundfonts", nargs="+",
                        default=["TimGM6mb", "FluidR3_GM", "MuseScore_General_Full"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "audio.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load0 = os.getloadavg()[0]
    config = RenderConfig()
    midis = segment_midis(args.n)
    rows, audio = bench_render(midis, available_soundfonts(args.soundfonts), config)
    print(rows, file=sys.stderr)
    first = next(iter(audio.values()))
    spectral = bench_encoder(make_encoder("spectral"), first, config.sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        mert = bench_encoder(tiny_mert(Path(tmp)), first, config.sample_rate)
    load1 = os.getloadavg()[0]
    mean_sec = sum(len(y) for y in first) / len(first) / config.sample_rate

    lines = [
        "# Audio benchmarks", "",
        f"Machine: {machine()}. Measured {datetime.date.today()} by "
        f"`benchmarks/audio_bench.py --n {args.n}`: one process, {args.n} PercePiano segments "
        f"spread over the sorted list (mean {mean_sec:.1f} s of audio each, tails included), "
        f"default `RenderConfig` ({config.sample_rate} Hz, reverb and chorus off). Load average "
        f"{load0:.1f} at the start and {load1:.1f} at the end on this shared machine: CPU seconds "
        "(the process's own time) are the fairer measure; wall seconds include waiting for "
        "the other users' processes.", "",
        "## Rendering (FluidSynth)", "",
        "| soundfont | segments | audio s | CPU s | x real time per core (CPU) | "
        "x real time (wall) | deterministic |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n, seconds, cpu, wall, same in rows:
        lines.append(f"| {name} | {n} | {seconds:.0f} | {cpu:.1f} | {seconds / cpu:.0f}x | "
                     f"{seconds / wall:.0f}x | {'yes' if same else 'NO'} |")
    lines += [
        "", "A fresh synth per rendering is included (10-60 ms: FluidSynth reparses the "
        "soundfont's preset tables even with its samples cached); that is the price of "
        "bit-identical output whatever was rendered before. `deterministic`: the first 5 "
        "segments rendered again give identical samples.", "",
        "## Encoding (one process, from float samples in memory)", "",
        "| encoder | segments/s (wall) | segments/s per CPU second | note |",
        "|---|---|---|---|",
        f"| spectral (log-mel 64 + CQT 88, pooled + frames) | {spectral[0]:.1f} | "
        f"{spectral[1]:.1f} | {mean_sec:.1f} s segments at 24 kHz |",
        f"| mert, tiny random HuBERT (2 layers, 32 wide) | {mert[0]:.1f} | {mert[1]:.1f} | "
        "the code path only (resample to 16 kHz, chunking, layer mean, pooling); "
        "says nothing about MERT-v1-95M's speed |",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
