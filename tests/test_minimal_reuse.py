"""The window engine across greedy steps: a copy's windows from the step before are kept where they cannot
have changed and recomputed where its box meets the removed region's, so every step's logits still equal
whole passes; windows two removals old, or sabotaged reuse, are caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_minimal_windows import _candidates, window_setup
from torch import nn

from unitscope.minimal.choice import LOGIT_TOLERANCE
from unitscope.minimal.fills import make_fill
from unitscope.minimal.segments import from_labels
from unitscope.minimal.split import whole_pass
from unitscope.minimal.windows import WindowScorer
from unitscope.models.preprocessing import Preprocessing


def _setup(name: str) -> tuple[nn.Module, np.ndarray, np.ndarray, WindowScorer]:
    model, image, labels, split, background = window_setup(name)
    return model, image, labels, WindowScorer(split, labels, background)


def _whole(model: nn.Module, image: np.ndarray, labels: np.ndarray, kept: np.ndarray
           ) -> tuple[torch.Tensor, np.ndarray]:
    """Whole-pass logits of every copy of the current image (``kept`` regions) removing one kept region."""
    rendered, regions = _candidates(image, labels, kept)
    with torch.no_grad():
        return torch.cat([model(Preprocessing().batch([im])) for im in rendered]), regions


def _current(scorer: WindowScorer, image: np.ndarray, labels: np.ndarray, kept: np.ndarray) -> list[torch.Tensor]:
    x = Preprocessing().batch(make_fill("mean", image, from_labels(labels)).render(kept[None]))
    with torch.no_grad():
        return whole_pass(scorer.split, x)[0]


def _off(window: torch.Tensor, whole: torch.Tensor) -> float:
    return float((window - whole).abs().max()) / max(1.0, float(whole.abs().max()))


@pytest.mark.parametrize("name", ["chain", "residual", "scene"])
def test_windows_kept_across_removals_give_whole_pass_logits(name: str) -> None:
    model, image, labels, scorer = _setup(name)
    kept = np.ones(16, dtype=bool)
    with torch.no_grad():
        scorer.set_current(_current(scorer, image, labels, kept))
        first = scorer.recomputed
        for region in (5, 6, 10, 0):  # neighbours: their boxes meet those of most copies left
            whole, regions = _whole(model, image, labels, kept)
            before = scorer.recomputed
            window = scorer.logits(torch.from_numpy(regions))
            assert _off(window, whole) < LOGIT_TOLERANCE / 10  # measured ~1e-7
            if region != 5:  # the first call computes every box; later ones only where boxes meet
                assert 0 < scorer.recomputed - before < first
            first = scorer.recomputed - before if region == 5 else first
            scorer.adopt(region)
            kept[region] = False


def _chain_scored_once() -> tuple[nn.Module, np.ndarray, np.ndarray, WindowScorer, np.ndarray]:
    """The chain net's scorer after every copy of the whole picture was scored once (their windows kept)."""
    model, image, labels, scorer = _setup("chain")
    kept = np.ones(16, dtype=bool)
    with torch.no_grad():
        scorer.set_current(_current(scorer, image, labels, kept))
        scorer.logits(torch.arange(16))
    return model, image, labels, scorer, kept


def test_copies_whose_boxes_miss_the_removed_region_recompute_nothing() -> None:
    model, image, labels, scorer, kept = _chain_scored_once()
    with torch.no_grad():
        scorer.adopt(0)  # the top left corner
        kept[0] = False
        whole, regions = _whole(model, image, labels, kept)
        before = scorer.recomputed
        far = scorer.logits(torch.tensor([15]))  # the bottom right corner: its boxes never meet region 0's
        assert scorer.recomputed == before  # only the head ran
        assert _off(far, whole[regions == 15]) < LOGIT_TOLERANCE / 10
        scorer.adopt(15)
        kept[15] = False
        whole, regions = _whole(model, image, labels, kept)
        before = scorer.recomputed
        near = scorer.logits(torch.tensor([1]))  # scored before region 15 went: two removals old, recomputed whole
        assert scorer.recomputed > before
        assert _off(near, whole[regions == 1]) < LOGIT_TOLERANCE / 10


def test_windows_two_removals_old_are_recomputed() -> None:
    model, image, labels, scorer, kept = _chain_scored_once()
    with torch.no_grad():
        kept[[5, 6]] = False  # two regions go before the next call: both steps' windows are stale
        scorer.set_current(_current(scorer, image, labels, kept), removed=5)
        scorer.set_current(_current(scorer, image, labels, kept), removed=6)
        whole, regions = _whole(model, image, labels, kept)
        assert _off(scorer.logits(torch.from_numpy(regions)), whole) < LOGIT_TOLERANCE / 10


def test_stale_windows_where_boxes_meet_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sabotage: after a removal, treat the copies' windows as current (recompute nothing). Their logits
    then stray far beyond the tolerance, so the tests above would fail on an engine that reused a window
    where its box meets the removed region's."""
    model, image, labels, scorer = _setup("chain")
    kept = np.ones(16, dtype=bool)
    with torch.no_grad():
        scorer.set_current(_current(scorer, image, labels, kept))
        scorer.logits(torch.arange(16))
        scorer.adopt(5)
        kept[5] = False
        monkeypatch.setattr(scorer, "_removed", None)  # "nothing was removed": every window counts as current
        whole, regions = _whole(model, image, labels, kept)
        window = scorer.logits(torch.from_numpy(regions))
    assert _off(window, whole) > 10 * LOGIT_TOLERANCE  # measured ~4e-3


def test_reuse_only_saves_work() -> None:
    """The same removals with windows kept and with every box recomputed: equal logits, less work kept."""
    results = []
    for reuse in (True, False):
        _, image, labels, scorer = _setup("residual")
        scorer.reuse = reuse
        kept = np.ones(16, dtype=bool)
        logits = []
        with torch.no_grad():
            scorer.set_current(_current(scorer, image, labels, kept))
            for region in (9, 10, 5):
                logits.append(scorer.logits(torch.from_numpy(np.flatnonzero(kept))))
                scorer.adopt(region)
                kept[region] = False
        results.append((torch.cat(logits), scorer.recomputed))
    (kept_logits, kept_work), (whole_logits, whole_work) = results
    assert _off(kept_logits, whole_logits) < LOGIT_TOLERANCE / 10
    assert kept_work < whole_work
