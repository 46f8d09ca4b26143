"""Training time per fold model of the audio+MIDI models -> benchmarks/fusion.md.

Trains fold model 0 of the piece split for every model in ``train_fusion.models``, in one
process with one torch thread (the stage runs ``train_fusion.n_jobs`` of these at once), on the
full data: CPU seconds (contrastive head pre-training, both stages, the refit), steps per stage.
Needs `dvc repro features encode_audio degrade weak_labels` first (and the ASAP window
pairs: encode_audio.sources with maestro).

    .venv/bin/python benchmarks/fusion_bench.py [--out benchmarks/fusion.md]
"""
import argparse
import datetime
import sys
import time
from pathlib import Path

import pandas as pd

from pianoeval.params import load_params, merge_params
from pianoeval.fusion.contrastive import ContrastiveConfig
from pianoeval.fusion.train import FusionConfig, fit_fold, fold_tasks
from pianoeval.fusion.data import load_aux, load_fusion_data, load_window_pairs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402  (benchmarks/run.py: the machine description)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "fusion.md")
    args = parser.parse_args()
    params = ROOT / "params.yaml"
    section = load_params("train_fusion", params)
    contrastive = ContrastiveConfig.settings(load_params("contrastive_heads", params))
    base = FusionConfig.from_dict(section["model"])
    data = load_fusion_data(ROOT / "data/labels.csv", ROOT / "data/features/features.csv",
                            ROOT / "data/embeddings" / section["encoder"], section["source"],
                            list(base.soundfonts))
    samples = pd.read_csv(ROOT / "data/degrade/samples.csv", low_memory=False)
    exclude = load_params("tokenize", params)["exclude_works"]
    data.aux = load_aux(samples, pd.read_csv(ROOT / "data/degrade/pairs.csv"),
                        pd.read_csv(ROOT / "data/weak_labels/labels.csv"), data.midi_columns,
                        data.audio_columns, exclude)
    data.windows = load_window_pairs(samples, ROOT / "data/embeddings" / section["encoder"],
                                     list(base.soundfonts), data.midi_columns, data.audio_columns,
                                     exclude)
    splits = pd.read_csv(ROOT / "data/splits.csv", dtype=str).set_index("segment") \
        .loc[data.segments].reset_index()
    _, _, train, val, _, _ = fold_tasks(splits, ["piece"], piece_seeds=1)[0]
    rows = []
    for name, spec in section["models"].items():
        spec = {k: v for k, v in (spec or {}).items() if k != "splits"}
        cfg = FusionConfig.from_dict(merge_params(section["model"], spec))
        start = time.perf_counter()
        fit = fit_fold(data, train, val, cfg, contrastive)
        rows.append(f"| {name} | {cfg.fusion if len(cfg.modalities) > 1 else '+'.join(cfg.modalities)} "
                    f"| {int(train.sum())} | {' / '.join(map(str, fit.epochs[0]))} "
                    f"| {time.perf_counter() - start:.1f} | {fit.seconds:.1f} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "# Audio+MIDI models: training time per fold model", "",
        f"Machine: {machine()}; one torch thread per fold model, CPU. Measured "
        f"{datetime.date.today().isoformat()} with `benchmarks/fusion_bench.py` (fold model 0 "
        "of the piece split, early-stopped on its inner validation fold, then refitted on all "
        "training rows; other work may share the cores). A fold model's time covers the "
        f"contrastive pre-training of its heads ({len(data.windows.items)} ASAP window pairs "
        "added where `pretrain_windows`), both stages and the refit. The stage trains "
        f"{section['n_jobs']} fold models at once.", "",
        "| model | fusion / modality | training segments | best steps (stage 1 / 2) | wall s | CPU s |",
        "|---|---|---|---|---|---|", *rows, ""])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
