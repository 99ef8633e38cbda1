"""Plain folders of images: an unlabeled probe set, and class sub-folders for evaluation.

Images are returned at their native size, converted to RGB; nothing is resized here, because the
model's preprocessing (or the user's ``--input-size``) decides the size the network sees. A folder
whose images differ in size is allowed; ``image_size`` reports the first image's size only.
Files and folders whose names start with ``.`` are ignored (editor and notebook debris).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from unitscope.data.errors import BadSampleError
from unitscope.data.probe import ConceptTable, ProbeSample
from unitscope.errors import UsageError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
READ_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def read_rgb(path: Path, context: str = "") -> np.ndarray:
    """Decode an image file to a writable uint8 [H, W, 3] array, or raise BadSampleError saying why."""
    where = f" ({context})" if context else ""
    if not path.is_file():
        raise BadSampleError(f"image {path}{where} is missing; restore the file or drop it from the set", path)
    try:
        with Image.open(path) as im:
            im.load()
            return _as_rgb8(im, path, where)
    except READ_ERRORS as err:
        raise BadSampleError(
            f"image {path}{where} cannot be decoded ({err}); replace the file or drop it from the set", path
        ) from err


def _as_rgb8(im: Image.Image, path: Path, where: str) -> np.ndarray:
    """uint8 [H, W, 3]; 16-bit and 32-bit integer greyscale scaled to 8 bits (PIL's own convert clips them
    to white), floating-point images refused rather than guessed."""
    if im.mode.startswith("I"):  # I;16, I;16B, I (16-bit PNG/TIFF greyscale as 32-bit ints)
        values = np.asarray(im).astype(np.int64)
        top = 65535 if im.mode.startswith("I;16") or values.max(initial=0) <= 65535 else 2**32 - 1
        if values.min(initial=0) < 0:
            raise BadSampleError(f"image {path}{where} has negative pixel values; save it as 8-bit RGB", path)
        grey = np.round(values * (255 / top)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "F":
        raise BadSampleError(f"image {path}{where} holds floating-point pixels; save it as 8-bit RGB", path)
    return np.array(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)


def image_size_of(path: Path) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except READ_ERRORS as err:
        raise BadSampleError(f"image {path} cannot be read ({err}); replace or remove it", path) from err
    return height, width


def _visible(relative: Path) -> bool:
    return not any(part.startswith(".") for part in relative.parts)


def list_images(root: Path) -> list[Path]:
    """All image files under ``root`` (any depth), sorted by path relative to ``root``."""
    found = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and _visible(p.relative_to(root))
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _check_dir(root: str | Path, what: str) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise UsageError(f"{what} {path} is not a directory; give a folder of images")
    return path


class ImageFolderProbe:
    """Every image under a folder, as a probe set without labels (``concepts`` is empty).

    Useful for top-image and receptive-field analyses on the user's own pictures; IoU needs labels
    and so a Broden directory or SceneWorld. ``label_size`` equals ``image_size`` (there are no maps).
    """

    def __init__(self, root: str | Path, max_images: int | None = None) -> None:
        self.root = _check_dir(root, "image folder")
        paths = list_images(self.root)
        if not paths:
            raise UsageError(
                f"no images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {self.root}; "
                "point --data at a folder that holds pictures"
            )
        if max_images is not None:
            if max_images <= 0:
                raise UsageError(f"max_images must be positive, got {max_images}")
            paths = paths[:max_images]
        self.paths: list[Path] = paths
        self.limit: int | None = max_images  # with the folder, what defines the subset (None: every image)
        self.name: str = self.root.resolve().name or "images"
        self.concepts: ConceptTable = ConceptTable((), ())
        self.image_size: tuple[int, int] = image_size_of(paths[0])
        self.label_size: tuple[int, int] = self.image_size

    def __len__(self) -> int:
        return len(self.paths)

    def image_path(self, i: int) -> Path:
        """The file behind sample ``i``."""
        return self.paths[_check_index(i, len(self.paths))]

    def __getitem__(self, i: int) -> ProbeSample:
        path = self.image_path(i)
        return ProbeSample(index=i, image=read_rgb(path, f"sample {i}"))


class ImageClassFolder:
    """Images in sub-folders named after the model's classes: ``root/<class>/…/<image>``.

    ``folder[i]`` is ``(uint8 [H, W, 3], index of the class in class_names)``. Samples are ordered by
    class folder name, then by path. Sub-folders for only some classes are fine; a sub-folder whose
    name is not a class is a usage error, as are images lying directly in ``root``.
    """

    def __init__(self, root: str | Path, class_names: Sequence[str]) -> None:
        self.root = _check_dir(root, "class folder")
        self.class_names: list[str] = list(class_names)
        position: dict[str, int] = {}
        for k, name in enumerate(self.class_names):
            position.setdefault(name, k)
        visible = [p for p in sorted(self.root.iterdir()) if not p.name.startswith(".")]
        loose = [p.name for p in visible if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if loose:
            raise UsageError(
                f"{self.root} has images outside class sub-folders ({', '.join(loose[:3])}); "
                f"move each into {self.root}/<class name>/"
            )
        folders = [p for p in visible if p.is_dir()]
        unknown = [p.name for p in folders if p.name not in position]
        if unknown:
            shown = ", ".join(self.class_names[:12]) + (" …" if len(self.class_names) > 12 else "")
            raise UsageError(
                f"sub-folders of {self.root} that are not class names of the model: {', '.join(unknown[:8])}; "
                f"rename them to the model's classes ({shown}) or remove them"
            )
        self.paths: list[Path] = []
        self.targets: list[int] = []
        for folder in folders:
            images = list_images(folder)
            self.paths.extend(images)
            self.targets.extend([position[folder.name]] * len(images))

    def __len__(self) -> int:
        return len(self.paths)

    def image_path(self, i: int) -> Path:
        """The file behind sample ``i``."""
        return self.paths[_check_index(i, len(self.paths))]

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        path = self.image_path(i)
        return read_rgb(path, f"sample {i}"), self.targets[i]


def _check_index(i: int, n: int) -> int:
    """Sample indices are 0 … n-1; anything else is IndexError (which also ends iteration)."""
    if not 0 <= i < n:
        raise IndexError(f"sample index {i} out of range for {n} samples")
    return i
