"""Images of more than 8 bits per channel are scaled to 8 bits, never clipped to white."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unitscope.data.errors import BadSampleError
from unitscope.data.image_folder import read_rgb


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16_bit_greyscale_is_scaled_not_white(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep.{suffix}"
    Image.fromarray(np.array([[0, 257, 32896, 65535]], dtype=np.uint16)).save(path)
    rgb = read_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]  # 65535 ↔ 255, linearly
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_floating_point_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5]], dtype=np.float32)).save(path)
    with pytest.raises(BadSampleError, match="floating-point"):
        read_rgb(path)
