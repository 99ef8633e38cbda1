"""The images a per-image analysis (segment, cam) looks at: one file, or the first N of a probe set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from unitscope.data.probe import ProbeSample, ProbeSet, has_labels
from unitscope.defaults import PICTURE_N
from unitscope.errors import UsageError


@dataclass(frozen=True)
class InputImage:
    """An image with a file-name-safe key, and its probe sample (labels) when it came from a probe set."""

    key: str
    image: np.ndarray
    sample: ProbeSample | None = None


class InputSource:
    """Random access to the inputs; ``probe`` is set when they come from a (possibly labelled) probe set."""

    def __init__(self, probe: ProbeSet | None, n: int, image_path: Path | None = None) -> None:
        self.probe = probe
        self.n = n
        self.image_path = image_path

    @property
    def labelled(self) -> bool:
        return self.probe is not None and has_labels(self.probe)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> InputImage:
        if not 0 <= i < self.n:
            raise IndexError(i)
        if self.probe is None:
            from unitscope.data.image_folder import read_rgb

            path = cast(Path, self.image_path)
            return InputImage(path.stem, read_rgb(path, "--image"))
        sample = self.probe[i]
        return InputImage(f"{i:05d}", sample.image, sample)


def open_inputs(image: str | None, data: str | None, n: int | None, seed: int, size: int) -> InputSource:
    """Resolve ``--image PATH`` or ``--data D --n N [--seed S]`` (exactly one of the two)."""
    if (image is None) == (data is None):
        raise UsageError("give exactly one of --image PATH or --data D (with --n N)")
    if image is not None:
        if n is not None:
            raise UsageError("--n goes with --data, not with --image")
        path = Path(image)
        if not path.is_file():
            raise UsageError(f"--image {image} does not exist; give the path of a PNG or JPEG file")
        return InputSource(None, 1, path)
    if n is not None and n <= 0:
        raise UsageError(f"--n must be positive, got {n}")
    from unitscope.data import open_probe

    count = n if n is not None else PICTURE_N
    probe = open_probe(data, n=count, seed=seed, size=size)  # type: ignore[arg-type]
    return InputSource(probe, min(count, len(probe)))
