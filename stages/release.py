"""DVC stage `release`: the model `pianoeval assess` loads, written to models/release/ (in git).

Fits each `release.variants` baselines model on every labelled segment, calibrates its intervals
on out-of-fold residuals over whole works, fits the per-bar reference on align@percepiano's
notes, and writes the model card (scores copied from metrics/eval.json)."""
import json
from pathlib import Path

import pandas as pd

from pianoeval.assess.bars import BarReference, reference_bars
from pianoeval.assess.card import model_card
from pianoeval.assess.release import fit_variant
from pianoeval.config import load_config
from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.features.sets import feature_set
from pianoeval.logs import setup_logging

OUT = Path("models/release")
ALIGN_KEYS = ("matchers", "min_match_rate", "min_usable_rate", "tempo_window_beats",
              "velocity_local_beats", "phrase_bars")  # what AlignConfig.from_params reads


def main() -> None:
    log = setup_logging("release")
    config, baselines = load_config("release"), load_config("baselines")
    align, features = load_config("align"), load_config("features")
    data = pd.read_csv("data/labels.csv").merge(pd.read_csv("data/features/features.csv"),
                                                 on="segment", validate="one_to_one")
    folds = data[["segment"]].merge(pd.read_csv("data/splits.csv", dtype=str),
                                    on="segment")["work_split"].to_numpy()
    all_cols = [c for c in data.columns if c not in ("segment", "n_raters", *DIMENSIONS)]
    OUT.mkdir(parents=True, exist_ok=True)
    variants = {}
    for variant, model_name in config.variants.items():
        estimator, features_name = baselines.models[model_name]
        if estimator != "ridge":
            raise SystemExit(f"release.variants.{variant}: {model_name} is a {estimator!r} "
                             "model; the release exports ridge only")
        variants[variant] = fit_variant(variant, data, feature_set(all_cols, features_name),
                                        folds, baselines.model_dump(), config.coverage)
        (OUT / f"{variant}.json").write_text(variants[variant].to_json())
        log.info("%s: %d features, mean half-width %.3f", variant,
                 len(variants[variant].model.features),
                 sum(variants[variant].halfwidth) / len(DIMENSIONS))
    reference = BarReference.fit(reference_bars(pd.read_csv("data/align/percepiano/notes.csv")))
    (OUT / "bars.json").write_text(json.dumps(reference.__dict__, indent=1) + "\n")
    settings = config.model_dump(exclude={"coverage"}) | {
        "align": align.model_dump(include=set(ALIGN_KEYS)),
        "chord_window_sec": features.chord_window_sec}
    (OUT / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    (OUT / "MODEL_CARD.md").write_text(model_card(
        variants, config.variants, json.loads(Path("metrics/eval.json").read_text()),
        reference.n_bars, config.practise_fraction))
    log.info("release written to %s (bar reference: %d bars)", OUT, reference.n_bars)


if __name__ == "__main__":
    main()
