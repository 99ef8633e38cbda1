"""The localisation score as text: trained beside the random twin, each difference with its interval."""

from __future__ import annotations

import math

from unitscope.analysis.cam.run import CamSummary
from unitscope.stats.paired import PairedDifference


def _number(value: float, digits: int = 3) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def _interval(diff: PairedDifference | None) -> str:
    if diff is None or math.isnan(diff.low):
        return ""
    return f"{diff.difference:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]"


def localisation_lines(summary: CamSummary) -> list[str]:
    """The table ``unitscope cam`` prints (no lines when nothing was scored)."""
    score = summary.localisation
    if score is None:
        return []
    where = summary.foreground["foreground"] if summary.foreground else "foreground objects"
    lines = [f"localisation on the foreground ({where}): {score.n_images} image(s) scored, {score.excluded} "
             f"excluded (mask ≥ {score.max_mask_share:.0%} of the image), {score.skipped} without a foreground "
             "object"]
    baseline = summary.baseline
    random = baseline.localisation if baseline else None
    diffs = baseline.differences if baseline else {}
    header = f"{'':30}{'trained':>9}" + (f"{'random':>9}   trained − random [95% interval]" if random else "")
    lines.append(header)
    rows = [(f"top {score.top_fraction:.0%} heat on objects", "hit_rate", None),
            ("object pixel share (chance)", "object_share", None),
            ("lift (hit rate / share)", "lift", "lift"),
            ("pointing game", "pointing", "pointing")]
    for title, field, measure in rows:
        line = f"{title:30}{_number(getattr(score, field)):>9}"
        if random is not None:
            line += f"{_number(getattr(random, field)):>9}   {_interval(diffs.get(measure) if measure else None)}"
        lines.append(line.rstrip())
    if baseline is not None:
        lines.append(baseline.verdict())
    return lines
