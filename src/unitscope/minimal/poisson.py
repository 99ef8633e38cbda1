"""Gradient-domain fill: rebuild an image from the gradients of the regions that are kept.

The image is the least-squares solution of ``D u = w ⊙ D f`` per colour channel, where ``D`` is the
4-neighbour difference operator (one row per pair of adjacent pixels), ``f`` the original image and
``w`` keeps a pair's gradient only when both pixels lie in kept regions (removed regions get zero
gradient, so they become a smooth membrane between what is kept). The normal equations
``L u = Dᵀ(w ⊙ D f)`` use the grid's graph Laplacian ``L = DᵀD``: a **Neumann** (zero-flux) boundary
at the image border. ``L`` is singular (constants), so we fix the constant by giving the result the
original image's mean colour. Hence with every region kept the result is the original image (up to
rounding), and with none kept it is the flat mean colour, i.e. the ``mean`` fill.

The right-hand side is linear in the pairs' kept flags, and a pair's flag is kept[r] AND kept[s] for the
regions r, s of its two pixels, so we solve once per group of pairs (one group per region and per pair
of adjacent regions) with one sparse LU factorisation, and any candidate image is a matrix product
of its group flags with those basis solutions: the greedy loop then costs no solves at all.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from unitscope.minimal.segments import Segmentation


def adjacent_pairs(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (first, second) of every 4-neighbour pixel pair, horizontal pairs first."""
    index = np.arange(height * width).reshape(height, width)
    first = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    second = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    return first, second


def difference_operator(first: np.ndarray, second: np.ndarray, num_pixels: int) -> sp.csr_matrix:
    """D: one row per pixel pair, +1 at its second pixel and -1 at its first."""
    rows = np.arange(len(first))
    data = np.concatenate([-np.ones(len(first)), np.ones(len(first))])
    return sp.csr_matrix(
        (data, (np.concatenate([rows, rows]), np.concatenate([first, second]))),
        shape=(len(first), num_pixels),
    )


class PoissonSolver:
    """Sparse LU of the grounded Neumann Laplacian of an H×W grid; reuse it for images of one size."""

    def __init__(self, height: int, width: int) -> None:
        self.shape = (height, width)
        self.first, self.second = adjacent_pairs(height, width)
        self.difference = difference_operator(self.first, self.second, height * width)
        laplacian = (self.difference.T @ self.difference).tocsc()
        # Pixel 0 is grounded: the right-hand sides used here sum to zero, so the grounded system has
        # the exact solution of the singular one (up to the constant we set afterwards).
        # The Laplacian is symmetric, so order it by minimum degree on its own pattern (about half the
        # fill-in of splu's default COLAMD on a grid).
        self._lu = splu(laplacian[1:, 1:].tocsc(), permc_spec="MMD_AT_PLUS_A")

    def solve_zero_mean(self, rhs: np.ndarray) -> np.ndarray:
        """Solve L u = rhs for each column of rhs [N, M] (columns summing to 0); zero-mean u [N, M]."""
        solution = np.zeros_like(rhs, dtype=np.float64)
        solution[1:] = self._lu.solve(np.asfortranarray(rhs[1:], dtype=np.float64))  # SuperLU solves by column
        centred: np.ndarray = solution - solution.mean(axis=0, keepdims=True)
        return centred


class GradientFill:
    """Rebuild images from the kept regions' gradients (see the module notes), batched."""

    def __init__(self, image: np.ndarray, segmentation: Segmentation, solver: PoissonSolver | None = None) -> None:
        height, width = image.shape[:2]
        if solver is None or solver.shape != (height, width):
            solver = PoissonSolver(height, width)
        labels = segmentation.labels.ravel()
        diff = solver.difference
        pixels = image.reshape(-1, 3).astype(np.float64)
        gradients = diff @ pixels  # [E, 3]
        r, s = labels[solver.first], labels[solver.second]
        low, high = np.minimum(r, s), np.maximum(r, s)
        groups, group_of_pair = np.unique(np.stack([low, high], axis=1), axis=0, return_inverse=True)
        group_of_pair = group_of_pair.ravel()
        self.groups = groups  # [G, 2] region pairs (r, r) for pairs inside one region
        num_groups = len(groups)
        num_pairs = len(group_of_pair)
        rhs_columns = []
        for channel in range(3):
            selector = sp.csr_matrix(
                (gradients[:, channel], (np.arange(num_pairs), group_of_pair)), shape=(num_pairs, num_groups)
            )
            rhs_columns.append((diff.T @ selector).toarray())
        solution = solver.solve_zero_mean(np.concatenate(rhs_columns, axis=1))  # [N, 3G], channel-major
        basis = solution.reshape(height * width, 3, num_groups).transpose(2, 0, 1)
        self._basis = np.ascontiguousarray(basis.reshape(num_groups, -1), dtype=np.float32)
        self._mean = image.reshape(-1, 3).astype(np.float64).mean(axis=0)
        self._shape = image.shape

    def render(self, kept: np.ndarray) -> np.ndarray:
        """Images for kept flags [C, K] (bool): uint8 [C, H, W, 3]."""
        kept = np.asarray(kept, dtype=bool)
        active = (kept[:, self.groups[:, 0]] & kept[:, self.groups[:, 1]]).astype(np.float32)
        values = (active @ self._basis).reshape(len(kept), *self._shape) + self._mean
        images: np.ndarray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return images
