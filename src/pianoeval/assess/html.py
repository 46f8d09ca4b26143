"""The `pianoeval assess` report as one self-contained HTML page (schema: docs/assess_schema.md).

Everything is inline (CSS, SVG drawn here), so the page opens offline. Every string taken from the
report goes through html.escape. Bars are shown numbered from 1 (the JSON's 0-based index + 1).
"""
from __future__ import annotations

import html
import math
import re

MAX_NOTES = 20000          # notes drawn in the piano roll; the rest are left out (and said so)
ROLL_MAX_WIDTH = 4000      # px; long pieces are squeezed rather than drawn ever wider
ROLL_PX_PER_SEC = 80
DEV_SATURATE_MS = 100.0    # onset deviation at which a note gets the full early/late colour

NEUTRAL = (200, 200, 200)
EARLY = (33, 102, 172)
LATE = (178, 24, 43)
PLAIN_FILL = "#5b6b7c"

CSS = """
body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;margin:24px;color:#222;background:#fff;
 max-width:1150px;font-size:14px;line-height:1.4}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
.meta{margin:2px 0}.meta b{display:inline-block;min-width:8.5rem}
.warnings{background:#fff4e5;border-left:4px solid #e08000;padding:6px 12px 6px 28px;margin:10px 0}
.unreliable{color:#b2182b;font-weight:bold}.ok{color:#1a7f37}
.would-add{background:#eef4fb;border-left:4px solid #2166ac;padding:6px 12px 6px 28px}
.dim{display:grid;grid-template-columns:17rem 6.5rem 300px 6.5rem 8.5rem 8rem;align-items:center;
 column-gap:8px;padding:2px 0;border-bottom:1px solid #f0f0f0}
.dim.head{font-weight:bold;border-bottom:1px solid #ccc}
.dim .low{text-align:right;color:#555}.dim .high{color:#555}
.dim .score{font-variant-numeric:tabular-nums}.dim .pct{color:#333}
.note{color:#555;font-size:12.5px}
.chart{display:block;margin:4px 0 14px}
.roll-wrap{overflow-x:auto;border:1px solid #ddd}
.legend{display:flex;flex-wrap:wrap;gap:18px;margin:6px 0;font-size:12.5px;align-items:center}
.legend svg{vertical-align:middle;margin-right:4px}
.passages li{margin-bottom:6px}.passages .reasons{margin:2px 0 0;color:#444}
footer{margin-top:30px;color:#888;font-size:12px}
"""


# --- small helpers ---------------------------------------------------------------------------

def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value) -> float | None:
    """A finite float, or None for null / missing / non-numeric / NaN values."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt(value, digits: int = 2) -> str:
    x = _num(value)
    return "—" if x is None else f"{x:.{digits}f}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _clock(sec) -> str:
    x = _num(sec)
    if x is None:
        return "—"
    minutes, seconds = divmod(max(x, 0.0), 60.0)
    return f"{int(minutes)}:{seconds:04.1f}"


def _bar_no(bar) -> str:
    x = _num(bar)
    return "?" if x is None else str(int(x) + 1)


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _mix(a: tuple, b: tuple, t: float) -> str:
    r, g, bl = (round(a[i] + (b[i] - a[i]) * t) for i in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def _dev_colour(dev_ms: float) -> str:
    t = min(abs(dev_ms) / DEV_SATURATE_MS, 1.0)
    return _mix(NEUTRAL, EARLY if dev_ms < 0 else LATE, t)


def _pitch_name(pitch: int) -> str:
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def _dim_id(name) -> str:
    return "dim-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(name))


def _dim_label(dim: dict) -> str:
    group = str(dim.get("group") or "").replace("_", " ").strip()
    low = str(dim.get("low") or "").replace("_", " ").strip()
    high = str(dim.get("high") or "").replace("_", " ").strip()
    if group and low and high:
        return f"{group[:1].upper()}{group[1:]}: {low} ↔ {high}"
    return str(dim.get("name", "")).replace("_", " ")


def _practise_bars(report: dict) -> set[int]:
    """Bar indices to shade: those flagged in bars[] plus every bar inside a listed passage."""
    marked = {int(b["bar"]) for b in report.get("bars") or []
              if b.get("practise") and _num(b.get("bar")) is not None}
    for p in report.get("passages_to_practise") or []:
        first, last = _num(p.get("first_bar")), _num(p.get("last_bar"))
        if first is not None and last is not None:
            marked.update(range(int(first), int(last) + 1))
    return marked


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """[start, end) index ranges where flags is True."""
    runs, start = [], None
    for i, flag in enumerate(flags + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


# --- header ----------------------------------------------------------------------------------

def _header(report: dict) -> str:
    inp = report.get("input") or {}
    model = report.get("model") or {}
    summary = report.get("summary") or {}
    variant = report.get("variant")
    variant_text = {"with_score": "with score",
                    "performance_only": "performance only"}.get(variant, str(variant))
    rows = [("Performance", f"{_e(inp.get('performance', '?'))} ({_e(inp.get('kind', '?'))})"),
            ("Score", _e(inp["score"]) if inp.get("score") else "none given")]
    trans = inp.get("transcription")
    if trans:
        rows.append(("Transcription", f"{_e(trans.get('model', '?'))}, {_e(trans.get('mode', '?'))}"
                                      f" mode, {_fmt(trans.get('seconds'), 1)} s"))
    coverage = _num(model.get("coverage"))
    cov_text = f"; intervals at {coverage * 100:.0f}% coverage" if coverage is not None else ""
    rows += [("Variant", f"<span class=\"variant\">{_e(variant_text)}</span>"),
             ("Model", f"{_e(model.get('name', '?'))}{_e(cov_text)}"),
             ("Length", f"{_clock(summary.get('duration_sec'))} (min:s), "
                        f"{_e(summary.get('n_notes', '?'))} notes, {_e(summary.get('n_bars', '?'))} bars"),
             ("Alignment", _alignment_text(report.get("alignment")))]
    parts = ["<header>", f"<h1>Piano performance assessment: {_e(inp.get('performance', ''))}</h1>"]
    parts += [f'<p class="meta"><b>{label}</b> {value}</p>' for label, value in rows]
    warnings = report.get("warnings") or []
    if warnings:
        parts.append('<ul class="warnings">'
                     + "".join(f'<li class="warning">{_e(w)}</li>' for w in warnings) + "</ul>")
    if variant == "performance_only":
        parts.append(_would_add(report.get("score_would_add") or []))
    parts.append("</header>")
    return "\n".join(parts)


def _alignment_text(al: dict | None) -> str:
    if not al:
        return "none (no score to align to)"
    f = _num(al.get("note_f"))
    f_text = f"note F {f:.2f}" if f is not None else "note F unknown"
    passes = al.get("n_passes", 1)
    pass_text = "one pass" if passes == 1 else f"{_e(passes)} passes (restarts or repeats)"
    text = (f"<span class=\"status\">{_e(al.get('status', '?'))}</span>: {f_text}, "
            f"{pass_text}; {_e(al.get('n_matched', '?'))} matched, "
            f"{_e(al.get('n_extra', '?'))} extra, {_e(al.get('n_missing', '?'))} missing. ")
    doubtful = al.get("unreliable_bars") or []
    if doubtful:
        text += ("Doubtful alignment in bars "
                 + ", ".join(_bar_no(b) for b in doubtful[:20])
                 + (" …" if len(doubtful) > 20 else "") + ". ")
    if al.get("reliable"):
        return text + '<span class="ok">Reliable.</span>'
    return text + ('<span class="unreliable">Not reliable: values measured against the score '
                   '(timing deviations, extra and missing notes) may be wrong.</span>')


def _would_add(items: list) -> str:
    lis = "".join(f"<li>{_e(item)}</li>" for item in items)
    return ('<div class="would-add" id="score-would-add"><b>What a score would add</b>'
            f"<ul>{lis}</ul></div>")


# --- dimensions ------------------------------------------------------------------------------

SCALE_W, SCALE_H, SCALE_PAD = 300, 22, 8


def _scale_x(v: float) -> float:
    return SCALE_PAD + _clamp(v, 0.0, 1.0) * (SCALE_W - 2 * SCALE_PAD)


def _scale_svg(score: float | None, interval) -> str:
    mid = SCALE_H / 2
    parts = [f'<svg class="scale" width="{SCALE_W}" height="{SCALE_H}" '
             f'viewBox="0 0 {SCALE_W} {SCALE_H}" role="img">',
             f'<line x1="{_scale_x(0):.1f}" y1="{mid}" x2="{_scale_x(1):.1f}" y2="{mid}" '
             'stroke="#bbb" stroke-width="1"/>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _scale_x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{mid - 4}" x2="{x:.1f}" y2="{mid + 4}" stroke="#bbb"/>')
    lo, hi = (_num(interval[0]), _num(interval[1])) if isinstance(interval, (list, tuple)) \
        and len(interval) == 2 else (None, None)
    if lo is not None and hi is not None:
        x0, x1 = sorted((_scale_x(lo), _scale_x(hi)))
        parts.append(f'<rect class="interval" x="{x0:.1f}" y="{mid - 4}" width="{max(x1 - x0, 1):.1f}" '
                     'height="8" rx="3" fill="#9ecae1"/>')
    if score is not None:
        parts.append(f'<circle class="score-dot" cx="{_scale_x(score):.1f}" cy="{mid}" r="5" '
                     'fill="#08519c" stroke="#fff" stroke-width="1"/>')
    parts.append("</svg>")
    return "".join(parts)


def _dimension_row(dim: dict) -> str:
    score = _num(dim.get("score"))
    interval = dim.get("interval") or []
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        interval_text = f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"
    else:
        interval_text = ""
    pct = _num(dim.get("percentile"))
    pct_text = f"{_ordinal(round(_clamp(pct, 0, 100)))} percentile" if pct is not None else "—"
    return (f'<div class="dim" id="{_e(_dim_id(dim.get("name", "")))}">'
            f'<span class="name">{_e(_dim_label(dim))}</span>'
            f'<span class="low">{_e(str(dim.get("low", "")).replace("_", " "))}</span>'
            f"{_scale_svg(score, interval)}"
            f'<span class="high">{_e(str(dim.get("high", "")).replace("_", " "))}</span>'
            f'<span class="score">{_fmt(score)} <span class="note">{_e(interval_text)}</span></span>'
            f'<span class="pct">{_e(pct_text)}</span></div>')


def _dimensions(report: dict) -> str:
    dims = report.get("dimensions") or []
    coverage = _num((report.get("model") or {}).get("coverage"))
    cov = f"{coverage * 100:.0f}%" if coverage is not None else "the model's nominal"
    head = ('<div class="dim head"><span>Dimension</span><span></span><span>0 … 1</span><span></span>'
            "<span>Score [interval]</span><span>Among PercePiano</span></div>")
    rows = "\n".join(_dimension_row(d) for d in dims)
    return ('<section id="dimensions"><h2>The 19 perceptual dimensions</h2>'
            f'<p class="note">Dot: predicted rating on PercePiano\'s 0..1 scale (0 = left word, '
            f"1 = right word). Bar: the range that holds the listeners' rating with {_e(cov)} "
            "coverage. Percentile: where this rating falls among the PercePiano performances.</p>"
            f"{head}\n{rows}</section>")


# --- tempo and dynamics charts ---------------------------------------------------------------

def _value_range(values: list[float], ref: float | None) -> tuple[float, float]:
    vals = values + ([ref] if ref is not None else [])
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9:
        pad = abs(lo) * 0.1 or 1.0
    else:
        pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _line_chart(bars: list, key: str, title: str, css_id: str, shaded: set[int],
                ref: float | None = None, digits: int = 2) -> str:
    values = [_num(b.get(key)) for b in bars]
    finite = [v for v in values if v is not None]
    if not finite:
        return f'<h3>{_e(title)}</h3><p class="note" id="{css_id}">No data.</p>'
    w, h, left, right, top, bottom = 1000, 190, 52, 10, 10, 30
    n = len(bars)
    slot = (w - left - right) / n
    lo, hi = _value_range(finite, ref)

    def x(i: float) -> float:
        return left + (i + 0.5) * slot

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (h - top - bottom)

    parts = [f'<svg class="chart" id="{css_id}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
             f'role="img"><title>{_e(title)}</title>']
    flags = [_num(b.get("bar")) is not None and int(b["bar"]) in shaded for b in bars]
    for start, end in _runs(flags):
        parts.append(f'<rect class="practise-shade" x="{left + start * slot:.1f}" y="{top}" '
                     f'width="{(end - start) * slot:.1f}" height="{h - top - bottom}" fill="#fde0c5"/>')
    for v in (lo + (hi - lo) * f for f in (0.1, 0.5, 0.9)):
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#555">{v:.{digits}f}</text>')
    if ref is not None:
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(ref):.1f}" y2="{y(ref):.1f}" '
                     'stroke="#888" stroke-dasharray="4 3"/>')
    parts += _polyline_segments(values, x, y, dots=n <= 80)
    parts += _bar_axis(bars, x, h - bottom + 16)
    parts.append("</svg>")
    return f"<h3>{_e(title)}</h3>" + "".join(parts)


def _polyline_segments(values: list, x, y, dots: bool) -> list[str]:
    """A polyline per run of non-null values, so nulls are gaps; lone points become dots."""
    parts = []
    for start, end in _runs([v is not None for v in values]):
        pts = [(x(i), y(values[i])) for i in range(start, end)]
        if len(pts) > 1:
            coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="#08519c" stroke-width="2"/>')
        if dots or len(pts) == 1:
            parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="#08519c"/>' for px, py in pts]
    return parts


def _bar_axis(bars: list, x, y_text: float) -> list[str]:
    step = max(1, math.ceil(len(bars) / 25))
    return [f'<text x="{x(i):.1f}" y="{y_text:.1f}" text-anchor="middle" font-size="11" fill="#555">'
            f"{_e(_bar_no(bars[i].get('bar')))}</text>" for i in range(0, len(bars), step)]


def _charts(report: dict, shaded: set[int]) -> str:
    bars = report.get("bars") or []
    if not bars:
        return '<section id="charts"><h2>Tempo and dynamics by bar</h2><p class="note">No bars.</p></section>'
    return ('<section id="charts"><h2>Tempo and dynamics by bar</h2>'
            '<p class="note">x: bar number. Shaded: passages to practise. Gaps: no value for that bar.</p>'
            + _line_chart(bars, "tempo_ratio", "Tempo (local tempo ÷ the performance's median; "
                          "dashed line = 1)", "tempo-chart", shaded, ref=1.0)
            + _line_chart(bars, "velocity_mean", "Dynamics (mean MIDI velocity, 0–127)",
                          "dynamics-chart", shaded, digits=0)
            + "</section>")


# --- piano roll ------------------------------------------------------------------------------

def _roll_geometry(notes: list, missing: list, bars: list, duration) -> dict | None:
    pitches = [int(p) for p in (_num(n.get("pitch")) for n in notes + missing) if p is not None]
    if not pitches:
        return None
    ends = [(_num(n.get("onset_sec")) or 0.0) + (_num(n.get("duration_sec")) or 0.0) for n in notes]
    ends += [_num(b.get("end_sec")) or 0.0 for b in bars] + [_num(duration) or 0.0]
    t_end = max(max(ends), 1e-3)
    left, top = 40, 18
    width = _clamp(t_end * ROLL_PX_PER_SEC, 600, ROLL_MAX_WIDTH)
    p_lo, p_hi = min(pitches) - 1, max(pitches) + 1
    row = max(3, min(8, 520 // (p_hi - p_lo + 1)))
    return {"left": left, "top": top, "sx": (width - left - 6) / t_end, "p_hi": p_hi, "p_lo": p_lo,
            "row": row, "w": width, "h": top + (p_hi - p_lo + 1) * row + 4}


def _note_kind(note: dict, has_alignment: bool) -> str:
    """How a note is drawn: extra (unmatched against a score), dev (has an onset deviation), plain."""
    if has_alignment and not note.get("matched"):
        return "extra"
    return "dev" if _num(note.get("onset_dev_ms")) is not None else "plain"


def _note_rect(note: dict, g: dict, has_alignment: bool) -> str:
    onset, pitch = _num(note.get("onset_sec")), _num(note.get("pitch"))
    if onset is None or pitch is None:
        return ""
    dur = _num(note.get("duration_sec")) or 0.0
    x = g["left"] + onset * g["sx"]
    y = g["top"] + (g["p_hi"] - int(pitch)) * g["row"]
    dev = _num(note.get("onset_dev_ms"))
    tip = f"{_pitch_name(int(pitch))}, bar {_bar_no(note.get('bar'))}, {_clock(onset)}, " \
          f"velocity {_e(note.get('velocity', '?'))}"
    kind = _note_kind(note, has_alignment)
    if kind == "extra":
        style, tip = 'class="extra" fill="#fff3d6" stroke="#e08000" stroke-width="1.5"', tip + ", extra note"
    elif kind == "dev":
        style = f'class="dev" fill="{_dev_colour(dev)}"'
        tip += f", {abs(dev):.0f} ms {'early' if dev < 0 else 'late'}"
    else:
        vel = _clamp(_num(note.get("velocity")) or 64, 0, 127)
        style = f'class="plain" fill="{PLAIN_FILL}" fill-opacity="{0.3 + 0.7 * vel / 127:.2f}"'
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(dur * g["sx"], 1.5):.1f}" '
            f'height="{g["row"] - 0.5}" {style}><title>{tip}</title></rect>')


def _missing_rects(missing: list, bars: list, g: dict) -> list[str]:
    """Missing notes have no performed time, so each spans the bar it belongs to."""
    spans = {int(b["bar"]): (b.get("start_sec"), b.get("end_sec")) for b in bars
             if _num(b.get("bar")) is not None}
    parts = []
    for m in missing:
        bar, pitch = _num(m.get("bar")), _num(m.get("pitch"))
        start, end = spans.get(int(bar), (None, None)) if bar is not None else (None, None)
        if pitch is None or _num(start) is None or _num(end) is None:
            continue
        x0, x1 = g["left"] + _num(start) * g["sx"], g["left"] + _num(end) * g["sx"]
        y = g["top"] + (g["p_hi"] - int(pitch)) * g["row"]
        parts.append(f'<rect class="missing" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 2):.1f}" '
                     f'height="{g["row"] - 0.5}" fill="none" stroke="#222" stroke-dasharray="3 2">'
                     f"<title>missing {_pitch_name(int(pitch))} in bar {_bar_no(bar)}</title></rect>")
    return parts


def _roll_grid(bars: list, g: dict, shaded: set[int]) -> list[str]:
    parts = []
    for p in range(g["p_lo"], g["p_hi"] + 1):
        if p % 12 == 0:
            y = g["top"] + (g["p_hi"] - p) * g["row"]
            parts.append(f'<line x1="{g["left"]}" x2="{g["w"]}" y1="{y + g["row"]:.1f}" '
                         f'y2="{y + g["row"]:.1f}" stroke="#eee"/><text x="{g["left"] - 4}" '
                         f'y="{y + g["row"]:.1f}" text-anchor="end" font-size="10" fill="#555">'
                         f"{_pitch_name(p)}</text>")
    step = max(1, math.ceil(len(bars) / 60))
    for i, b in enumerate(bars):
        start, end, bar = _num(b.get("start_sec")), _num(b.get("end_sec")), _num(b.get("bar"))
        if start is None:
            continue
        x = g["left"] + start * g["sx"]
        if bar is not None and int(bar) in shaded and end is not None:
            parts.append(f'<rect class="practise-shade" x="{x:.1f}" y="{g["top"]}" '
                         f'width="{(end - start) * g["sx"]:.1f}" height="{g["h"] - g["top"] - 4}" '
                         'fill="#fde0c5"/>')
        if i % step == 0:
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{g["top"] - 4}" y2="{g["h"] - 4}" '
                         f'stroke="#ccc"/><text x="{x + 2:.1f}" y="{g["top"] - 6}" font-size="10" '
                         f'fill="#555">{_e(_bar_no(bar))}</text>')
    return parts


def _swatch(attrs: str) -> str:
    return f'<svg width="22" height="12"><rect x="1" y="1" width="20" height="10" {attrs}/></svg>'


def _legend(has_alignment: bool, any_plain: bool) -> str:
    items = []  # (swatch svg, text)
    if has_alignment:
        gradient = "".join(
            f'<rect x="{i * 8}" y="1" width="8" height="10" fill="{_dev_colour(d)}"/>'
            for i, d in enumerate((-100, -60, -25, 0, 25, 60, 100)))
        items += [(f'<svg width="56" height="12">{gradient}</svg>',
                   f"early · on time · late (full colour at {DEV_SATURATE_MS:.0f} ms)"),
                  (_swatch('fill="#fff3d6" stroke="#e08000" stroke-width="1.5"'),
                   "extra note (not in the score)"),
                  (_swatch('fill="none" stroke="#222" stroke-dasharray="3 2"'),
                   "missing note (somewhere in that bar)")]
    if any_plain:
        items.append((_swatch(f'fill="{PLAIN_FILL}" fill-opacity="0.7"'),
                      "note without a timing reference (darker = louder)"))
    items.append((_swatch('fill="#fde0c5"'), "passage to practise"))
    return '<div class="legend">' + "".join(f"<span>{svg}{text}</span>" for svg, text in items) + "</div>"


def _piano_roll(report: dict, shaded: set[int]) -> str:
    notes_all = report.get("notes") or []
    notes = notes_all[:MAX_NOTES]
    missing = (report.get("missing_notes") or [])[:MAX_NOTES]
    bars = report.get("bars") or []
    has_alignment = bool(report.get("alignment"))
    head = '<section id="piano-roll"><h2>Piano roll</h2>'
    g = _roll_geometry(notes, missing, bars, (report.get("summary") or {}).get("duration_sec"))
    if g is None:
        return head + '<p class="note">No notes.</p></section>'
    cut = (f'<p class="note truncated">Only the first {MAX_NOTES} of {len(notes_all)} notes are drawn.</p>'
           if len(notes_all) > MAX_NOTES else "")
    svg = [f'<svg class="roll" width="{g["w"]:.0f}" height="{g["h"]}" '
           f'viewBox="0 0 {g["w"]:.0f} {g["h"]}" role="img">']
    svg += _roll_grid(bars, g, shaded)
    svg += [_note_rect(n, g, has_alignment) for n in notes]
    svg += _missing_rects(missing, bars, g)
    svg.append("</svg>")
    any_plain = any(_note_kind(n, has_alignment) == "plain" for n in notes)
    return (head + '<p class="note">x: time (bar numbers on top), y: pitch. Hover a note for details.</p>'
            + cut + _legend(has_alignment, any_plain)
            + '<div class="roll-wrap">' + "".join(svg) + "</div></section>")


# --- passages --------------------------------------------------------------------------------

def _passages(report: dict) -> str:
    passages = report.get("passages_to_practise") or []
    head = '<section id="passages"><h2>Passages to practise</h2>'
    if not passages:
        return head + '<p class="note">None stood out.</p></section>'
    items = []
    for i, p in enumerate(passages):
        first, last = _bar_no(p.get("first_bar")), _bar_no(p.get("last_bar"))
        bars_text = f"Bar {first}" if first == last else f"Bars {first}–{last}"
        unusual = _num(p.get("unusualness"))
        unusual_text = (f"; more unusual than {unusual:.0f}% of PercePiano bars"
                        if unusual is not None else "")
        reasons = "".join(f"<li>{_e(r)}</li>" for r in p.get("reasons") or [])
        items.append(f'<li class="passage" id="passage-{i}"><b>{_e(bars_text)}</b> '
                     f"({_clock(p.get('start_sec'))}–{_clock(p.get('end_sec'))}){_e(unusual_text)}"
                     f'<ul class="reasons">{reasons}</ul></li>')
    return head + '<ol class="passages">' + "".join(items) + "</ol></section>"


# --- page ------------------------------------------------------------------------------------

def render_html(report: dict) -> str:
    """The whole report as one self-contained HTML page (no external resources)."""
    shaded = _practise_bars(report)
    title = f"pianoeval assessment: {(report.get('input') or {}).get('performance', '')}"
    body = [_header(report), _dimensions(report), _passages(report),
            _charts(report, shaded), _piano_roll(report, shaded),
            f"<footer>pianoeval {_e(report.get('pianoeval_version', '?'))}, report schema "
            f"{_e(report.get('schema_version', '?'))}. Bars are numbered from 1; times are "
            "min:s from the start of the performance file.</footer>"]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
