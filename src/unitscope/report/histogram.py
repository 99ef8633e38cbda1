"""A unit's activation histogram as a small inline SVG, with its threshold marked.

The run counts every activation in fixed float32 bins (:mod:`unitscope.stats.histogram`, 16 per octave), which
are narrow near zero and wide at large values. For a readable linear axis the counts are spread over equal-width
display bins by interpolating the cumulative count at the display edges (uniform within a stored bin: a
drawing choice; the stored counts stay exact). The y axis is logarithmic, since most of a unit's pixels lie
far below the threshold that Network Dissection cuts at. Hand-written SVG rather than matplotlib: a few
hundred units each get one, and an SVG string costs well under a millisecond where a figure costs ~50 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

WIDTH, HEIGHT = 560, 210
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 14, 34
DISPLAY_BINS = 80


@dataclass(frozen=True)
class DisplayHistogram:
    """Equal-width bins over [low, high] and the (fractional) count of activations in each."""

    low: float
    high: float
    counts: np.ndarray  # [DISPLAY_BINS] float64
    total: int
    above: int  # activations in stored bins entirely at or above the threshold (a lower bound)


def display_bins(counts: np.ndarray, edges: np.ndarray, threshold: float, peak: float | None = None,
                 bins: int = DISPLAY_BINS) -> DisplayHistogram | None:
    """Spread one unit's stored counts [B] (bins ``edges`` [B + 1]) over ``bins`` equal-width bins.

    The range runs from the lowest non-empty stored bin to ``peak`` (the unit's largest activation, exact)
    or the top of the highest non-empty bin; None when the unit has no counts.
    """
    counts = np.asarray(counts, dtype=np.float64)
    filled = np.nonzero(counts)[0]
    if not len(filled):
        return None
    finite = np.clip(edges, -np.finfo(np.float32).max, np.finfo(np.float32).max)
    low = float(finite[filled[0]])
    high = float(finite[filled[-1] + 1])
    if peak is not None and math.isfinite(peak) and low < peak <= high:
        high = float(peak)  # the top bin's count is spread up to the unit's largest value, not past it
        finite = finite.copy()
        finite[filled[-1] + 1] = max(high, float(np.nextafter(finite[filled[-1]], np.inf)))
    if math.isfinite(threshold):
        low, high = min(low, threshold), max(high, threshold)
    if high <= low:
        high = low + 1.0
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    at = np.interp(np.linspace(low, high, bins + 1), finite, cumulative)
    at[-1] = cumulative[-1]  # everything up to the peak is inside the drawn range
    at[0] = min(at[0], cumulative[filled[0]])
    above = int(counts[edges[:-1] >= threshold].sum()) if math.isfinite(threshold) else 0
    return DisplayHistogram(low, high, np.diff(at), int(cumulative[-1]), above)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick positions inside [low, high]."""
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1) if first + i * step <= high + 1e-12]


def histogram_svg(counts: np.ndarray, edges: np.ndarray, threshold: float, peak: float | None = None,
                  quantile: object = "") -> str:
    """The SVG markup of one unit's histogram (an empty string when the unit has no counts)."""
    shown = display_bins(counts, edges, threshold, peak)
    if shown is None:
        return ""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = math.log10(1.0 + float(shown.counts.max()))

    def x(value: float) -> float:
        return LEFT + (value - shown.low) / (shown.high - shown.low) * plot_w

    def y(count: float) -> float:
        return TOP + plot_h * (1.0 - math.log10(1.0 + count) / top if top > 0 else 1.0)

    step = plot_w / len(shown.counts)
    bars = "".join(_bars(shown.counts.tolist(), step, top, plot_h))
    ticks = "".join(
        f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}"/>'
        f'<text x="{x(t):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{t:.3g}</text>'
        for t in _ticks(shown.low, shown.high)
    )
    decades = "".join(
        f'<text x="{LEFT - 6}" y="{y(10.0 ** d - 1) + 4:.1f}" text-anchor="end">10{_superscript(d)}</text>'
        f'<line x1="{LEFT - 3}" x2="{LEFT}" y1="{y(10.0 ** d - 1):.1f}" y2="{y(10.0 ** d - 1):.1f}"/>'
        for d in range(0, int(top) + 1, max(1, int(top) // 4 or 1))
    )
    tx = x(threshold) if math.isfinite(threshold) else None
    share = 100.0 * shown.above / shown.total if shown.total else 0.0
    label = f"threshold {threshold:.3g}" + (f" (top {quantile})" if quantile != "" else "")
    marker = "" if tx is None else (
        f'<line class="thr" x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>'
        f'<text class="thr" x="{min(tx + 4, WIDTH - RIGHT - 4):.1f}" y="{TOP + 10}" '
        f'text-anchor="{"start" if tx < LEFT + plot_w * 0.7 else "end"}">{escape(label)}</text>'
    )
    title = (f"{shown.total} activations from {shown.low:.3g} to {shown.high:.3g}; at least {share:.2f}% "
             f"at or above the threshold")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui, sans-serif" font-size="11" role="img">'
        f"<title>{escape(title)}</title>"
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#f7f8fa"/>'
        f'<g fill="#4a6fa5">{bars}</g>'
        f'<g stroke="#556" fill="#556">{ticks}{decades}</g>'
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#556"/>'
        f'<g stroke="#c8463d" fill="#c8463d" stroke-dasharray="4 3">{marker}</g>'
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle" fill="#556">activation</text>'
        f'<text x="12" y="{TOP + plot_h / 2}" text-anchor="middle" fill="#556" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2})">pixels (log)</text>'
        "</svg>"
    )


def _bars(counts: list[float], step: float, top: float, plot_h: int) -> list[str]:
    """One ``<rect>`` per non-empty display bin. The drawing's inner loop: each bar's height is computed once,
    from Python floats (numpy scalars cost more than the formatting), with the same arithmetic as ``y``."""
    bottom = TOP + plot_h
    width = f"{step:.2f}"
    log10 = math.log10
    bars = []
    for i, c in enumerate(counts):
        if c > 0:
            at = TOP + plot_h * (1.0 - log10(1.0 + c) / top if top > 0 else 1.0)
            bars.append(f'<rect x="{LEFT + i * step:.1f}" y="{at:.1f}" width="{width}" height="{bottom - at:.1f}"/>')
    return bars


def _superscript(power: int) -> str:
    return str(power).translate(str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻"))
