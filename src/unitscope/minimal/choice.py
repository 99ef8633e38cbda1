"""The greedy step's choice from window logits, with near ties and the reported score from whole passes.

Window logits (:mod:`unitscope.minimal.windows`) may differ from a whole forward pass's by float
rounding. :func:`contenders` keeps every candidate that could still be the best if each logit were off by
``LOGIT_TOLERANCE`` of the logits' size; each of them is scored by a whole pass, as the per-candidate loop
scores it, and the best of those is removed. So the removals and their scores are the per-candidate
loop's (batch size 1) whenever the window logits are within the tolerance, which every step checks on the
candidates it scored both ways.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from unitscope.minimal.split import Split, whole_pass
from unitscope.minimal.windows import WindowScorer

# Largest difference between a window logit and a whole pass's that the choice allows for, relative to the
# largest logit (at least 1). Float32 rounding differences measure ~1e-6 of that (tests/test_minimal_windows.py).
LOGIT_TOLERANCE = 1e-4
SLACK = 1e-12  # on -log p: what float64 softmax rounding can move it by
RESYNC_EVERY = 16  # steps: at least this often the chosen candidate is scored whole and its activations cached


def contenders(logits: torch.Tensor, target: int, tolerance: float = LOGIT_TOLERANCE) -> np.ndarray:
    """Rows that could have the highest softmax probability of ``target`` once rounding is undone.

    Each logit may be off by ``delta = tolerance * max(1, max |logit|)``; then ``q = -log p`` is off by at
    most ``2 delta``, and by a factor at most ``exp(2 delta)`` (log(1 + aS) <= a log(1 + S) for a >= 1), so
    a row whose lowest possible ``q`` exceeds the smallest highest possible ``q`` cannot be the best.
    """
    z = logits.double()
    delta = tolerance * max(1.0, float(z.abs().max()))
    q = -torch.log_softmax(z, dim=1)[:, target]
    low = torch.maximum(q * math.exp(-2 * delta), q - 2 * delta) - SLACK
    high = torch.minimum(q * math.exp(2 * delta), q + 2 * delta) + SLACK
    chosen: np.ndarray = torch.nonzero(low <= high.min()).squeeze(1).cpu().numpy()
    return chosen


def within_tolerance(window: torch.Tensor, whole: torch.Tensor, tolerance: float = LOGIT_TOLERANCE) -> bool:
    """Whether window logits match a whole pass's as closely as :func:`contenders` assumes."""
    scale = max(1.0, float(window.abs().max()), float(whole.abs().max()))
    return bool((window.double() - whole.double()).abs().max() <= tolerance * scale)


Scores = Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]


class WindowedSteps:
    """The greedy loop's choices from window logits; the current image's activations carried along.

    ``whole(x)`` is the model's checked forward pass on inputs [1, 3, H, W] and ``scores(logits)`` turns
    logits into (probabilities of the target, predictions), exactly as the per-candidate loop does.
    """

    def __init__(self, split: Split, labels: np.ndarray, background: torch.Tensor, target: int,
                 whole: Callable[[torch.Tensor], torch.Tensor], scores: Scores) -> None:
        self.split = split
        self.scorer = WindowScorer(split, labels, background)
        self.target = target
        self.whole = whole
        self.scores = scores
        self.exact_split = False  # whether the split's whole pass is bit for bit the model's
        self.whole_passes = 0
        self.steps = 0

    def start(self, x: torch.Tensor, logits: torch.Tensor) -> None:
        """Begin at the original image ``x`` [1, 3, H, W], whose model logits are ``logits``."""
        with torch.no_grad():
            acts, own = whole_pass(self.split, x)
        self.exact_split = bool(torch.equal(own.float(), logits))
        self.scorer.set_current(acts)

    def _whole(self, x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """The model's logits for one input [1, 3, H, W] and, when ``keep``, its trunk activations."""
        self.whole_passes += 1
        if self.exact_split:
            acts, out = whole_pass(self.split, x)
            return self._checked(out, x), acts
        logits = self.whole(x)
        return logits, whole_pass(self.split, x)[0] if keep else None

    def _checked(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = out.float()
        if logits.ndim != 2 or not 0 <= self.target < logits.shape[1] or not torch.isfinite(logits).all():
            return self.whole(x)  # the model's own pass raises the error the user should see
        return logits

    def choose(self, candidates: np.ndarray, inputs: Callable[[int], torch.Tensor]
               ) -> tuple[int, float, int] | None:
        """(row of the best candidate, its probability, its prediction), or None when window logits stray
        beyond the tolerance (then the caller scores the step whole). ``inputs(row)`` gives a candidate's
        network input [1, 3, H, W] as the per-candidate loop makes it.

        When one candidate is clearly best and its prediction clear, no whole pass is run (except every
        ``RESYNC_EVERY`` steps): its probability is the window logits', and the next step starts from its
        windows pasted into the cached activations.
        """
        self.steps += 1
        with torch.no_grad():
            logits = self.scorer.logits(torch.from_numpy(candidates))
            rows = contenders(logits, self.target)
            if len(rows) == 1 and self.steps % RESYNC_EVERY and clear_prediction(logits, int(rows[0])):
                probs, preds = self.scores(logits[int(rows[0]):int(rows[0]) + 1])
                self.scorer.adopt(int(candidates[rows[0]]))
                return int(rows[0]), float(probs[0]), int(preds[0])
            x = [inputs(int(row)) for row in rows]
            scored = [self._whole(x[k], keep=len(rows) == 1) for k in range(len(rows))]
        whole = torch.cat([z for z, _ in scored])
        if not within_tolerance(logits[torch.from_numpy(rows).to(logits.device)], whole.to(logits.device)):
            return None
        probs, preds = (np.concatenate(parts) for parts in zip(*(self.scores(z) for z, _ in scored), strict=True))
        best = int(np.argmax(probs))  # rows ascend, so the first maximum is the lowest region on ties
        acts = scored[best][1]
        if acts is None:
            with torch.no_grad():
                acts = whole_pass(self.split, x[best])[0]
        self.scorer.set_current(acts, removed=int(candidates[rows[best]]))
        return int(rows[best]), float(probs[best]), int(preds[best])


def clear_prediction(logits: torch.Tensor, row: int, tolerance: float = LOGIT_TOLERANCE) -> bool:
    """Whether row ``row``'s top-1 class stays the same with every logit off by the tolerance."""
    delta = tolerance * max(1.0, float(logits.abs().max()))
    top = torch.topk(logits[row].double(), 2).values
    return bool(top[0] - top[1] > 2 * delta)
