"""Discriminativeness of an object for scenes: mutual information between its presence and the scene.

For object o and images i with a scene label s_i, let x_i = 1 when o appears anywhere in image i.
``I(X_o; S) = Σ_{x,s} p(x, s) log2 p(x, s) / (p(x) p(s))`` with the plug-in (count) estimates: the bits
of information about the scene that knowing whether o is present gives. Always present or never present
→ 0 bits; present in exactly the images of one of two equally likely scenes → 1 bit. Frequent objects
shared by all scenes (sky, wall) score low; objects that tell scenes apart (bed, boat) score high.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import mutual_info_score


def presence_mutual_information(presence: np.ndarray, scenes: np.ndarray) -> np.ndarray:
    """[L] mutual information in bits between each column of ``presence`` [N, L] (bool) and ``scenes`` [N]."""
    presence = np.asarray(presence, dtype=bool)
    scenes = np.asarray(scenes)
    if presence.ndim != 2 or scenes.shape != (presence.shape[0],):
        raise ValueError(f"presence must be [N, L] and scenes [N], got {presence.shape} and {scenes.shape}")
    if presence.shape[0] == 0:
        return np.full(presence.shape[1], np.nan)
    _, scene_codes = np.unique(scenes, return_inverse=True)
    one_hot = np.eye(int(scene_codes.max()) + 1, dtype=np.int64)[scene_codes]  # [N, S]
    present = presence.T.astype(np.int64) @ one_hot  # [L, S]
    absent = one_hot.sum(axis=0)[None, :] - present
    bits = [mutual_info_score(None, None, contingency=np.stack([absent[k], present[k]])) / math.log(2)
            for k in range(presence.shape[1])]
    return np.maximum(np.array(bits, dtype=np.float64), 0.0)
