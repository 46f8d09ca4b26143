"""Tests of pianoeval.assess.html: the page is rendered, then opened in a real headless Chromium."""
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from pianoeval.assess.html import MAX_NOTES, render_html
from pianoeval.data.dimensions import DIMENSIONS

EVIL_WARNING = 'score "<script>alert(1)</script>.mid" did not match; performance-only answered'
PERFORMANCE = "takes/etude <op. 10> take 2.mid"
SECONDS_PER_BAR = 2.0


def _dimension(name: str, rng) -> dict:
    group = "music_making" if name.startswith("music_making") else name.split("_")[0]
    low, *high = name[len(group) + 1:].split("_")
    score = float(rng.uniform(0.2, 0.8))
    half = float(rng.uniform(0.05, 0.15))
    return {"name": name, "group": group, "low": low, "high": " ".join(high), "score": score,
            "interval": [max(score - half, 0.0), min(score + half, 1.0)],
            "percentile": float(rng.uniform(0, 100))}


def _bars(n_bars: int, practise: set, rng) -> list:
    bars = []
    for b in range(n_bars):
        bars.append({"pass": 0, "bar": b, "start_sec": b * SECONDS_PER_BAR, "end_sec": (b + 1) * SECONDS_PER_BAR,
                     "n_notes": 0, "tempo_ratio": float(rng.normal(1.0, 0.08)),
                     "onset_dev_ms_std": float(rng.uniform(5, 40)),
                     "velocity_mean": float(rng.uniform(45, 90)), "velocity_rel_std": 0.1,
                     "articulation_ratio": 0.8, "sustain_ratio": 0.4, "n_extra": 0, "n_missing": 0,
                     "unusualness": float(rng.uniform(0, 100)), "practise": b in practise})
    bars[6]["tempo_ratio"] = None  # a gap in the tempo line
    bars[6]["onset_dev_ms_std"] = None
    return bars


def _notes(n_notes: int, n_bars: int, rng) -> list:
    onsets = np.sort(rng.uniform(0, n_bars * SECONDS_PER_BAR - 0.3, n_notes))
    notes = []
    for i, onset in enumerate(onsets):
        matched = i % 17 != 5
        notes.append({"onset_sec": float(onset), "duration_sec": float(rng.uniform(0.1, 0.6)),
                      "pitch": int(rng.integers(45, 86)), "velocity": int(rng.integers(30, 110)),
                      "pass": 0, "bar": int(onset // SECONDS_PER_BAR), "matched": matched,
                      "onset_dev_ms": float(rng.normal(0, 45)) if matched else None,
                      "velocity_rel_local": 0.0, "articulation_ratio": 0.9, "sustain_cc": 0})
    return notes


def make_report(variant: str = "with_score", n_bars: int = 12, n_notes: int = 150, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    with_score = variant == "with_score"
    practise = {3, 4, 8, 9}
    bars = _bars(n_bars, practise, rng) if n_bars else []
    notes = _notes(n_notes, n_bars, rng) if n_notes else []
    if not with_score:
        for note in notes:
            note.update(matched=False, onset_dev_ms=None)
    return {
        "schema_version": 1, "pianoeval_version": "0.1.0",
        "input": {"performance": PERFORMANCE, "kind": "midi",
                  "score": "scores/etude.musicxml" if with_score else None, "transcription": None},
        "variant": variant,
        "model": {"name": f"fusion-{variant}", "card": "models/card.md", "coverage": 0.9},
        "warnings": [EVIL_WARNING, "the performance is shorter than 20 s"],
        "score_would_add": [] if with_score else [
            "timing deviations against the written rhythm", "extra and missing notes",
            "bars as written instead of a <4-beat> grid"],
        "summary": {"duration_sec": n_bars * SECONDS_PER_BAR, "n_notes": n_notes, "n_bars": n_bars},
        "alignment": {"status": "ok", "n_passes": 1, "match_rate": 0.94, "coverage": 0.94,
                      "note_f": 0.95, "n_matched": 141, "n_extra": 9, "n_missing": 4,
                      "reliable": True, "score_bars": [0, n_bars - 1], "unreliable_bars": [3],
                      "passes": [{"first_bar": 0, "last_bar": n_bars - 1, "match_rate": 0.94,
                                  "status": "ok", "start_sec": 0.0}]} if with_score else None,
        "dimensions": [_dimension(name, rng) for name in DIMENSIONS],
        "bars": bars, "notes": notes,
        "missing_notes": [{"pass": 0, "bar": b, "pitch": p, "score_onset_beat": 4.0 * b + 1}
                          for b, p in ((2, 60), (3, 67), (8, 72), (11, 55))] if with_score and n_bars else [],
        "passages_to_practise": [
            {"first_bar": 3, "last_bar": 4, "start_sec": 6.0, "end_sec": 10.0, "unusualness": 93.0,
             "reasons": ["timing much less steady than usual", "two missing notes"]},
            {"first_bar": 8, "last_bar": 9, "start_sec": 16.0, "end_sec": 20.0, "unusualness": 88.5,
             "reasons": ["rushes: local tempo 1.2 × the median"]},
        ] if n_bars else [],
    }


class _Dom(HTMLParser):
    """Collects element ids, script elements, and the text of warning items."""

    def __init__(self):
        super().__init__()
        self.ids, self.scripts, self.warning_texts, self._in_warning = set(), 0, [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        self.scripts += tag == "script"
        if tag == "li" and "warning" in (attrs.get("class") or "").split():
            self._in_warning = True
            self.warning_texts.append("")

    def handle_endtag(self, tag):
        if tag == "li":
            self._in_warning = False

    def handle_data(self, data):
        if self._in_warning:
            self.warning_texts[-1] += data


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("PIANOEVAL_SKIP_BROWSER") == "1":
            pytest.skip("chromium is missing and PIANOEVAL_SKIP_BROWSER=1")
        pytest.fail("chromium is missing: run `make setup`, which installs Debian's chromium (or set PIANOEVAL_SKIP_BROWSER=1 to skip)")
    return exe


def run_chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assess_html")
    path = tmp / "report.html"
    text = render_html(make_report())
    path.write_text(text, encoding="utf-8")
    return tmp, path, text


def test_dom_in_browser_has_every_dimension_passages_and_escaped_warning(page):
    tmp, path, _ = page
    dom = _Dom()
    dom.feed(run_chromium(tmp, "--dump-dom", path.as_uri()).stdout)
    assert {f"dim-{name}" for name in DIMENSIONS} <= dom.ids
    assert {"passage-0", "passage-1", "tempo-chart", "dynamics-chart"} <= dom.ids
    assert dom.scripts == 0  # the warning's <script> is text, not an element
    assert EVIL_WARNING in dom.warning_texts


def test_screenshot_is_not_blank(page):
    tmp, path, _ = page
    png = tmp / "shot.png"
    run_chromium(tmp, f"--screenshot={png}", "--window-size=1200,2400", path.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    try:
        from PIL import Image
    except ImportError:  # PIL is not a declared dependency; a blank page compresses to a few KB
        assert png.stat().st_size > 20_000
        return
    with Image.open(png) as img:
        assert img.size == (1200, 2400)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 20


def test_page_is_self_contained(page):
    _, _, text = page
    urls = set(re.findall(r"https?://[^\s\"'<>]*", text)) - {"http://www.w3.org/2000/svg"}
    assert not urls
    assert "<script>alert" not in text and "&lt;op. 10&gt;" in text
    assert not re.search(r"<(link|img|iframe|object|embed)\b", text)


def test_readable_dimension_rows():
    text = render_html(make_report())
    assert "Timing: stable ↔ unstable" in text
    assert "Music making: fast ↔ slow paced" in text
    assert re.search(r"\d+(st|nd|rd|th) percentile", text)
    assert text.count('class="score-dot"') == len(DIMENSIONS)
    assert text.count('class="interval"') == len(DIMENSIONS)


def test_performance_only_lists_what_a_score_would_add():
    report = make_report(variant="performance_only")
    text = render_html(report)
    assert 'id="score-would-add"' in text
    for item in report["score_would_add"]:
        assert f"<li>{item.replace('<', '&lt;').replace('>', '&gt;')}</li>" in text
    assert '<span class="variant">performance only</span>' in text
    assert 'class="extra"' not in text  # without an alignment, no note is called extra


def test_with_score_does_not_show_score_would_add():
    text = render_html(make_report())
    assert 'id="score-would-add"' not in text
    assert 'class="extra"' in text and 'class="missing"' in text and 'class="dev"' in text
    assert "note F 0.95, one pass" in text and "Doubtful alignment in bars 4." in text


def test_empty_bars_and_notes_render():
    report = make_report(n_bars=0, n_notes=0)
    text = render_html(report)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "No bars." in text and "No notes." in text
    assert all(f'id="dim-{name}"' in text for name in DIMENSIONS)


def test_long_piece_is_capped():
    report = make_report(n_bars=300, n_notes=MAX_NOTES + 50)
    text = render_html(report)
    assert f"Only the first {MAX_NOTES} of {MAX_NOTES + 50} notes are drawn." in text
    assert text.count('class="dev"') + text.count('class="extra"') == MAX_NOTES
    width = float(re.search(r'<svg class="roll" width="([\d.]+)"', text).group(1))
    assert width <= 4000
