"""DVC stage `splits`: piece, performer and work protocols -> data/splits.csv (git-tracked)."""
import json
import logging
from pathlib import Path

import pandas as pd

from pianoeval.data.splits import make_splits
from pianoeval.params import load_params


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params("splits")
    labels = pd.read_csv("data/labels.csv", usecols=["segment"])
    splits = make_splits(labels["segment"].tolist(), params["seed"], params["test_fraction"],
                         params["n_folds"])
    splits.to_csv("data/splits.csv", index=False)
    counts = {col: splits[col].value_counts().sort_index().to_dict()
              for col in splits.columns if col != "segment"}
    Path("metrics/splits.json").write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    logging.info("splits: %s", counts)


if __name__ == "__main__":
    main()
