"""One default per idea, shared by the CLI and the API (docs/cli.md, "Conventions").

``--n`` and ``--seed`` mean the same thing in every command that takes them, so they default the same:
a probe set that statistics are taken over, fresh images no threshold saw, or images explained one by one.
"""

from __future__ import annotations

PROBE_N = 500  # images of a probe set statistics are taken over (dissect, rf, world, evaluate, ablate)
PROBE_SEED = 0  # the probe set dissect, rf and world share, so their runs see the same images
PROBE_SIZE = 112  # SceneWorld image side of a probe set rendered in memory (dissect --data sceneworld)
WORLD_SIZE = 224  # image side of a `world` export: a user's ImageNet-style network's input (SceneWorld's nets resize)
FRESH_SEED = 12345  # fresh images no threshold saw (evaluate, ablate, minimal, cam, segment)
PICTURE_N = 8  # images explained one by one, each with its own pictures (minimal, cam, segment)
FIT_N = 400  # images of the run's probe set (its seed and size) that segment's concept vectors are fitted on
