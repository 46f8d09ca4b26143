"""DVC stage `baselines`: mean and ridge (on all features or a named subset), fitted per fold
of every protocol."""
from pathlib import Path

import joblib
import pandas as pd

from pianoeval.config import load_config
from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.evaluate.inputs import write_predictions
from pianoeval.features.sets import feature_set
from pianoeval.logs import setup_logging
from pianoeval.models.baselines import cross_fit


def main() -> None:
    log = setup_logging("baselines")
    config = load_config("baselines")
    labels = pd.read_csv("data/labels.csv")
    features = pd.read_csv("data/features/features.csv")
    splits = pd.read_csv("data/splits.csv", dtype=str)
    data = labels.merge(features, on="segment")
    if len(data) < len(labels):
        log.warning("%d labelled segments have no features and are left out",
                    len(labels) - len(data))
    all_cols = [c for c in features.columns if c != "segment"]
    log.info("baselines on %d segments x %d features", len(data), len(all_cols))

    Path("models/baselines").mkdir(parents=True, exist_ok=True)
    for name, (estimator, features_name) in config.models.items():
        feature_cols = feature_set(all_cols, features_name)
        predictions, models = cross_fit(estimator, config.model_dump(), data, feature_cols,
                                        splits, config.splits)
        write_predictions(Path("metrics/predictions") / name, predictions)
        joblib.dump({"features": feature_cols, "dimensions": list(DIMENSIONS), "models": models},
                    Path("models/baselines") / f"{name}.joblib")
        log.info("%s: wrote %s", name, sorted(predictions))


if __name__ == "__main__":
    main()
