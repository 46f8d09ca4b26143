"""The degrade stage's counts and item selection (pianoeval.degrade.batch)."""
from types import SimpleNamespace

import pandas as pd
import pytest

from pianoeval.degrade.batch import check_aligned, clean_items, degrade_metrics


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


def test_windows_of_a_performance_the_align_stage_skipped_stop_the_stage(tmp_path):
    csv = tmp_path / "alignments.csv"
    pd.DataFrame({"segment": ["a/p1", "a/p2", "b/p3"],
                  "status": ["ok", "skipped", "failed"]}).to_csv(csv, index=False)
    check_aligned(csv, {"a/p1", "b/p3"})  # a failed alignment is a fact, not a limit
    check_aligned(tmp_path / "absent.csv", {"a/p2"})  # no align output: features go without
    with pytest.raises(ValueError, match=r"alignments.csv: 1 of the 2 performances .* \(e.g. "
                                         r"a/p2\); align.sources.maestro.max_items"):
        check_aligned(csv, {"a/p1", "a/p2"})


def test_align_max_items_keeps_the_performances_render_and_degrade_window():
    """align.sources.maestro.max_items spreads over the sorted items as spread_pick does, so the
    same number keeps exactly the performances the windows come from."""
    from pianoeval.align.batch import Item, limit_items
    from pianoeval.audio.render import spread_pick

    items = [Item(f"w{k:03d}/perf", f"perf{k}.mid", f"score{k}.mid", f"score{k}.mid")
             for k in range(1067)]
    for n in (1, 7, 200, 1066, 2000):
        kept = [it.name for it in limit_items(items, {}, None, n) if it.skip is None]
        assert kept == [it.name for it in spread_pick(items, n)]
