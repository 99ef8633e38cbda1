"""ImageFolderProbe and ImageClassFolder on tiny folders written by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unitscope.data.errors import BadSampleError
from unitscope.data.image_folder import ImageClassFolder, ImageFolderProbe
from unitscope.data.probe import ProbeSet, has_labels
from unitscope.errors import UsageError


def save(path: Path, size: tuple[int, int], value: int, mode: str = "RGB") -> None:
    """An image of (height, width) filled with ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, value // 2, 255 - value)
    Image.new(mode, (size[1], size[0]), color).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "pictures"
    save(root / "b.png", (4, 5), 10)
    save(root / "a/z.PNG", (6, 3), 20)
    save(root / "a/c.bmp", (4, 5), 30, mode="L")
    save(root / "d.webp", (2, 2), 40)
    save(root / ".hidden/x.png", (4, 5), 50)
    (root / "notes.txt").write_text("not an image")
    return root


def test_images_sorted_by_relative_path_at_native_size(folder: Path) -> None:
    probe = ImageFolderProbe(folder)
    assert isinstance(probe, ProbeSet) and not has_labels(probe)
    assert [probe.image_path(i).relative_to(folder).as_posix() for i in range(len(probe))] == [
        "a/c.bmp", "a/z.PNG", "b.png", "d.webp",
    ]
    assert probe.name == "pictures"
    assert probe.image_size == (4, 5) and probe.label_size == (4, 5)
    gray = probe[0]
    assert gray.index == 0 and gray.image.shape == (4, 5, 3) and gray.image.dtype == np.uint8
    assert (gray.image == 30).all()
    assert gray.pixel_labels == {} and gray.image_labels == {}
    tall = probe[1].image
    assert tall.shape == (6, 3, 3)
    np.testing.assert_array_equal(tall[0, 0], [20, 10, 235])
    tall[0, 0] = 0  # samples are writable copies
    with pytest.raises(IndexError):
        probe[4]


def test_max_images_and_empty_folder(folder: Path, tmp_path: Path) -> None:
    assert len(ImageFolderProbe(folder, max_images=2)) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        ImageFolderProbe(tmp_path / "empty")
    with pytest.raises(UsageError, match="not a directory"):
        ImageFolderProbe(tmp_path / "missing")


def test_corrupt_and_vanished_images_are_bad_samples(folder: Path) -> None:
    probe = ImageFolderProbe(folder)
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(BadSampleError, match=r"b\.png .*cannot be decoded"):
        probe[2]
    (folder / "d.webp").unlink()
    with pytest.raises(BadSampleError, match=r"d\.webp .*missing"):
        probe[3]
    assert probe[0].image.shape == (4, 5, 3)


def test_class_folder_targets_index_the_model_classes(tmp_path: Path) -> None:
    root = tmp_path / "eval"
    save(root / "kitchen/1.png", (4, 4), 1)
    save(root / "beach/2.png", (4, 4), 2)
    save(root / "beach/sub/3.jpg", (4, 4), 3)
    (root / "README.txt").write_text("class folders")
    folder = ImageClassFolder(root, ["forest", "kitchen", "beach"])
    assert len(folder) == 3
    assert folder.targets == [2, 2, 1]
    image, target = folder[2]
    assert target == 1 and image.shape == (4, 4, 3) and image.dtype == np.uint8
    assert folder.image_path(0).name == "2.png"
    with pytest.raises(IndexError):
        folder[3]


def test_class_folder_rejects_unknown_classes_and_loose_images(tmp_path: Path) -> None:
    root = tmp_path / "eval"
    save(root / "kitchen/1.png", (4, 4), 1)
    save(root / "space/2.png", (4, 4), 2)
    with pytest.raises(UsageError, match="not class names of the model: space.*kitchen, beach"):
        ImageClassFolder(root, ["kitchen", "beach"])
    save(root / "loose.jpg", (4, 4), 3)
    with pytest.raises(UsageError, match=r"outside class sub-folders \(loose\.jpg\)"):
        ImageClassFolder(root, ["kitchen", "space"])
