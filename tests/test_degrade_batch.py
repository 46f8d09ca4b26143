"""The degrade stage's counts and item selection (pianoeval.degrade.batch)."""
from types import SimpleNamespace

import pandas as pd

from pianoeval.degrade.batch import clean_items, degrade_metrics


def test_degrade_metrics_count_samples_pairs_and_failures():
    items = [SimpleNamespace(source="percepiano", name=f"p{k}") for k in range(3)] + \
        [SimpleNamespace(source="maestro", name="m@0-20000")]
    samples = pd.DataFrame({"family": ["clean", "timing", "timing", "pedal", "clean"],
                            "tier": [0, 1, 2, 1, 0],
                            "variant": ["", "jitter", "jitter", "over", ""],
                            "work": ["w1", "w1", "w1", "w2", "w2"]})
    pairs = pd.DataFrame({"family": ["timing", "timing", "pedal"]})
    failures = [(f"f{k}", "error") for k in range(25, 0, -1)]
    metrics = degrade_metrics(items, failures, samples, pairs)
    assert metrics["n_clean_segments"] == {"percepiano": 3, "maestro": 1}
    assert metrics["n_failed"] == 25 and metrics["failed"] == sorted(f"f{k}" for k in range(1, 26))[:20]
    assert metrics["n_samples_by_family_tier"] == {"clean/0": 2, "pedal/1": 1, "timing/1": 1,
                                                   "timing/2": 1}
    assert metrics["n_samples_by_variant"] == {"pedal/over": 1, "timing/jitter": 2}
    assert metrics["n_pairs"] == 3 and metrics["n_pairs_by_family"] == {"pedal": 1, "timing": 2}
    assert metrics["n_works"] == 2


def test_clean_items_without_sources_selects_nothing(tmp_path):
    assert clean_items({}, tmp_path, tmp_path) == ([], {})
    assert clean_items({"percepiano": None, "maestro": None}, tmp_path, tmp_path) == ([], {})
