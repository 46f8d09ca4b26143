"""The performance features of many segments in one compiled pass (numba).

``features.symbolic`` defines the features; this module computes them for a batch of segments
held as flat note and control columns with per-segment offsets, so that a batch costs a few
array calls rather than some sixty numpy calls per segment (which left feature extraction at a
tenth of the raw MIDI parse rate).

The results are bit-identical to numpy's: sums use numpy's pairwise summation (numpy adds
floats in blocks of eight, halving above 128 values, not left to right), percentiles numpy's
"linear" interpolation, medians the mean of the middle one or two values, and logarithms
numpy's own ``np.log`` (its SIMD log differs from libm's in the last bit for about one value in
a thousand), taken between two compiled passes. ``tests/test_features_kernel.py`` checks the
identity against a plain numpy implementation on every real segment.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from pianoeval.data.midi import SOFT_CC, SUSTAIN_CC

PEDAL_DOWN = 64  # the MIDI convention: CC value >= 64 is "on"
P10, P90 = 10 / 100, 90 / 100  # as np.percentile divides its q by 100

# Column order of the feature matrix: features.symbolic.PERFORMANCE_FEATURES.
(N_NOTES, DURATION, ONSET_SPAN, VEL_MEAN, VEL_STD, VEL_P10, VEL_P90, VEL_RANGE, VEL_STEP,
 IOI_MEDIAN, IOI_CV, LOG_IOI_STD, ONSETS_PER_SEC, NOTES_PER_SEC, DUR_MEDIAN, DUR_CV, LEGATO,
 ARTICULATION, SUSTAIN_DOWN, SUSTAIN_CHANGES, SUSTAIN_MEAN, PEDAL_HALF, SOFT_DOWN, POLY_MEAN,
 POLY_MAX, PITCH_MEAN, PITCH_STD, PITCH_RANGE, PITCH_LOW, PITCH_HIGH) = range(30)
N_FEATURES = 30


@njit(cache=True)
def _block(a, lo, n):
    """numpy's ``pairwise_sum`` of a[lo:lo + n] for n <= 128 (numpy/_core/src/umath/
    loops_utils.h.src): left to right below 8 values, else in eight interleaved accumulators."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def _half(n):
    """Where numpy's pairwise_sum cuts n > 128 values: half, rounded down to a multiple of 8."""
    n2 = n // 2
    return n2 - n2 % 8


@njit(cache=True)
def _pairwise(a, lo, n):
    """numpy's ``pairwise_sum`` of a[lo:lo + n]: above 128 values, the sum of the two halves
    (:func:`_half`), each summed the same way. numpy recurses; this walks the same tree with an
    explicit stack, because numba's cache cannot reload a recursive function (it crashes)."""
    if n <= 128:
        return _block(a, lo, n)
    start = np.empty(64, np.int64)  # depth <= log2(n): 64 frames cover any array
    size = np.empty(64, np.int64)
    left_done = np.zeros(64, np.bool_)
    left = np.empty(64)
    top = 0
    start[0], size[0] = lo, n
    while True:
        if size[top] > 128:  # descend into the left half
            start[top + 1], size[top + 1] = start[top], _half(size[top])
            left_done[top + 1] = False
            top += 1
            continue
        value = _block(a, start[top], size[top])
        top -= 1
        while True:  # hand the finished sum to its parent
            if not left_done[top]:  # it was the left half: now the right one
                left_done[top], left[top] = True, value
                n2 = _half(size[top])
                start[top + 1], size[top + 1] = start[top] + n2, size[top] - n2
                left_done[top + 1] = False
                top += 1
                break
            value = left[top] + value
            if top == 0:
                return value
            top -= 1


@njit(cache=True)
def _sum(a):
    """``a.sum()``: the reduction starts from add's identity, 0."""
    return 0.0 + _pairwise(a, 0, len(a))


@njit(cache=True)
def _mean(a):
    return _sum(a) / len(a)


@njit(cache=True)
def _std(a):
    """``a.std()`` (ddof 0), as numpy's ``_var``: mean of the squared deviations, then sqrt."""
    m = _mean(a)
    sq = np.empty(len(a))
    for i in range(len(a)):
        sq[i] = (a[i] - m) * (a[i] - m)
    return math.sqrt(_sum(sq) / len(a))


@njit(cache=True)
def _median(a):
    """``np.median``: the mean of the middle value, or of the middle two."""
    s = np.sort(a)
    k = len(s) // 2
    return _mean(s[k:k + 1]) if len(s) % 2 else _mean(s[k - 1:k + 1])


@njit(cache=True)
def _percentile_sorted(s, q):
    """``np.percentile(a, 100 q)`` ("linear") of ``s``, ``a`` sorted: numpy's ``_lerp``."""
    v = (len(s) - 1) * q
    if v >= len(s) - 1:
        return s[len(s) - 1]
    below = math.floor(v)
    t = v - below
    a, b = s[int(below)], s[int(below) + 1]
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


@njit(cache=True)
def _ratio(num, den):
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return np.nan
    return num / den


@njit(cache=True)
def onset_groups(onsets, window_sec):
    """Group index per onset (sorted): a new group starts more than ``window_sec`` after the
    first onset of the current one (see ``features.symbolic.onset_groups``)."""
    group = np.empty(len(onsets), dtype=np.int64)
    current, start = -1, -np.inf
    for i in range(len(onsets)):
        if onsets[i] - start > window_sec:
            current, start = current + 1, onsets[i]
        group[i] = current
    return group


@njit(cache=True)
def _polyphony_max(onset, offset):
    """Most keys down at once, sweeping note-ons and note-offs in time order with a note-off
    before a note-on at the same instant; zero-length notes never sound."""
    sounding = offset > onset
    ons, offs = np.sort(onset[sounding]), np.sort(offset[sounding])
    down = best = j = 0
    for i in range(len(ons)):
        while offs[j] <= ons[i]:
            down -= 1
            j += 1
        down += 1
        best = max(best, down)
    return float(best)


@njit(cache=True)
def _cc_steps(time, number, value, cc, t0, t1):
    """The step function of controller ``cc`` on [t0, t1] as (values, durations): the value in
    force at t0 is that of the last event at or before t0 (0: pedal up), and of several events
    at one instant only the last counts (see ``features.symbolic._cc_steps``)."""
    initial = 0.0
    k = 0
    times = np.empty(len(time) + 1)
    values = np.empty(len(time) + 1)
    for i in range(len(time)):
        if number[i] != cc:
            continue
        if time[i] <= t0:
            initial = float(value[i])
        elif time[i] < t1:
            if k > 0 and times[k - 1] == time[i]:
                k -= 1  # a later event at the same instant replaces the earlier one
            times[k], values[k] = time[i], float(value[i])
            k += 1
    steps = np.empty(k + 1)
    widths = np.empty(k + 1)
    steps[0] = initial
    steps[1:] = values[:k]
    widths[:k] = times[:k]
    widths[k] = t1
    widths[0] -= t0
    for i in range(1, k + 1):
        widths[i] -= times[i - 1]
    return steps, widths


@njit(cache=True)
def _pedal(feat, time, number, value, t0, t1):
    span = t1 - t0
    sustain, w = _cc_steps(time, number, value, SUSTAIN_CC, t0, t1)
    down = sustain >= PEDAL_DOWN
    feat[SUSTAIN_DOWN] = _sum(w[down]) / span
    feat[PEDAL_HALF] = _sum(w[(sustain >= 1) & ~down]) / span
    feat[SUSTAIN_MEAN] = _sum(sustain * w) / span
    feat[SUSTAIN_CHANGES] = np.count_nonzero(down[1:] != down[:-1]) / span
    soft, w_soft = _cc_steps(time, number, value, SOFT_CC, t0, t1)
    feat[SOFT_DOWN] = _sum(w_soft[soft >= PEDAL_DOWN]) / span


@njit(cache=True)
def _segment(feat, onset, dur, pitch, vel, time, number, value, window_sec, ioi_out):
    """Every feature of one segment but LOG_IOI_STD into ``feat`` (NaN-filled); its IOIs into
    ``ioi_out``; returns their count."""
    n = len(onset)
    feat[N_NOTES] = n
    if n == 0:
        return 0
    offset = onset + dur
    t0, t1 = onset[0], offset.max()
    span = t1 - t0
    feat[DURATION], feat[ONSET_SPAN] = span, onset[-1] - t0

    v = np.sort(vel)
    feat[VEL_MEAN], feat[VEL_STD] = _mean(vel), _std(vel)
    feat[VEL_P10], feat[VEL_P90] = _percentile_sorted(v, P10), _percentile_sorted(v, P90)
    feat[VEL_RANGE] = v[-1] - v[0]
    feat[PITCH_MEAN], feat[PITCH_STD] = _mean(pitch), _std(pitch)
    feat[PITCH_LOW], feat[PITCH_HIGH] = pitch.min(), pitch.max()
    feat[PITCH_RANGE] = pitch.max() - pitch.min()
    feat[DUR_MEDIAN] = _median(dur)
    feat[DUR_CV] = _ratio(_std(dur), _mean(dur))
    feat[POLY_MAX] = _polyphony_max(onset, offset)

    group = onset_groups(onset, window_sec)
    n_groups = group[-1] + 1
    group_onset = np.empty(n_groups)
    group_vel = np.zeros(n_groups)  # np.bincount's weighted sums: in note order, from 0
    group_size = np.zeros(n_groups)
    for i in range(n):
        if i == 0 or group[i] != group[i - 1]:
            group_onset[group[i]] = onset[i]
        group_vel[group[i]] += vel[i]
        group_size[group[i]] += 1
    n_ioi = 0
    if n_groups >= 2:
        ioi = np.diff(group_onset)
        n_ioi = len(ioi)
        ioi_out[:n_ioi] = ioi
        feat[IOI_MEDIAN] = _median(ioi)
        feat[IOI_CV] = _ratio(_std(ioi), _mean(ioi))
        feat[VEL_STEP] = _mean(np.abs(np.diff(group_vel / group_size)))
        has_next = group < n_groups - 1
        next_onset = group_onset[group[has_next] + 1]
        feat[LEGATO] = np.count_nonzero(offset[has_next] > next_onset) / len(next_onset)
        feat[ARTICULATION] = _median(dur[has_next] / (next_onset - onset[has_next]))
    if span > 0:
        feat[ONSETS_PER_SEC], feat[NOTES_PER_SEC] = n_groups / span, n / span
        feat[POLY_MEAN] = _sum(dur) / span  # time-average of keys down
        _pedal(feat, time, number, value, t0, t1)
    return n_ioi


@njit(cache=True)
def _note_order(onset, pitch, dur, vel):
    """Indexes that sort notes by (onset, pitch, duration, velocity), np.sort's order for the
    note array: a stable sort by onset, then insertion into place by the whole key (only notes
    at one onset can still be out of order, so this is close to linear)."""
    order = np.argsort(onset, kind="mergesort")
    for i in range(1, len(order)):
        j = i
        while j > 0:
            a, b = order[j - 1], order[j]
            if (onset[b], pitch[b], dur[b], vel[b]) >= (onset[a], pitch[a], dur[a], vel[a]):
                break
            order[j - 1], order[j] = b, a
            j -= 1
    return order


@njit(cache=True)
def _first_pass(onset, dur, pitch, vel, note_start, time, number, value, cc_start, window_sec):
    n_seg = len(note_start) - 1
    feats = np.full((n_seg, N_FEATURES), np.nan)
    ioi = np.empty(max(len(onset), 1))
    ioi_start = np.zeros(n_seg + 1, dtype=np.int64)
    for s in range(n_seg):
        a, b = note_start[s], note_start[s + 1]
        c, d = cc_start[s], cc_start[s + 1]
        k = ioi_start[s]
        order = a + _note_order(onset[a:b], pitch[a:b], dur[a:b], vel[a:b])
        n_ioi = _segment(feats[s], onset[order], dur[order], pitch[order], vel[order],
                         time[c:d], number[c:d], value[c:d], window_sec, ioi[k:])
        ioi_start[s + 1] = k + n_ioi
    return feats, ioi[:ioi_start[-1]], ioi_start


@njit(cache=True)
def _log_ioi_std(feats, log_ioi, ioi_start):
    for s in range(len(feats)):
        a, b = ioi_start[s], ioi_start[s + 1]
        if b > a:
            feats[s, LOG_IOI_STD] = _std(log_ioi[a:b])


def feature_matrix(notes: dict[str, np.ndarray], note_start: np.ndarray,
                   controls: dict[str, np.ndarray], cc_start: np.ndarray,
                   window_sec: float) -> np.ndarray:
    """The PERFORMANCE_FEATURES (columns, in that order) of each segment (rows).

    ``notes``: flat columns ``onset_sec``, ``duration_sec``, ``pitch``, ``velocity``, in any
    order within a segment (each is sorted by onset, pitch, duration, velocity here); segment
    *s* holds rows ``note_start[s]:note_start[s + 1]``. ``controls``: flat ``time_sec``,
    ``number``, ``value`` in time order (events at one instant in file order), sliced by
    ``cc_start`` likewise.
    """
    if not window_sec >= 0:  # a negative window would split unisons into 0-s IOIs
        raise ValueError(f"chord window must be >= 0 seconds, got {window_sec}")
    f8 = lambda x: np.ascontiguousarray(x, dtype=np.float64)  # noqa: E731
    i8 = lambda x: np.ascontiguousarray(x, dtype=np.int64)  # noqa: E731
    feats, ioi, ioi_start = _first_pass(
        f8(notes["onset_sec"]), f8(notes["duration_sec"]), f8(notes["pitch"]),
        f8(notes["velocity"]), i8(note_start), f8(controls["time_sec"]),
        i8(controls["number"]), i8(controls["value"]), i8(cc_start), float(window_sec))
    _log_ioi_std(feats, np.log(ioi), ioi_start)  # numpy's log, see the module docstring
    return feats
