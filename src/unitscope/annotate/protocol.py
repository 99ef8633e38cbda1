"""The paper's protocol as constants and one record type: categories, image counts, refusal rules."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from unitscope.errors import UsageError

# The authors' category codes 1..6, in their order (layerAverageCount columns follow it).
CATEGORIES: tuple[str, ...] = ("scene", "object", "region", "part", "texture", "color")
CATEGORY_TITLES: tuple[str, ...] = ("Scene", "Object", "Region or surface", "Object part",
                                    "Texture or material", "Simple element or colour")
N_REAL = 57
N_CATCH = 3
TASK_IMAGES = N_REAL + N_CATCH  # the paper's 60-image task; dissect --topk 60 keeps enough top images
MIN_MARKED = 10
ANNOTATIONS_PER_UNIT = 3
CONCEPT_MAX = 40
CONCEPT_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9 '\-]*")


@dataclass(frozen=True)
class Annotation:
    """One annotator's answer for one unit: concept text, category code (1-6) and precision (fraction)."""

    layer: str
    unit: int
    annotator: str
    concept: str
    category: int
    precision: float

    @property
    def category_name(self) -> str:
        return CATEGORIES[self.category - 1]


def category_code(value: str | int) -> int:
    """A category code 1..6 from a code or one of the six names; UsageError otherwise."""
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        code = int(value)
        if 1 <= code <= len(CATEGORIES):
            return code
    elif isinstance(value, str) and value.strip().lower() in CATEGORIES:
        return CATEGORIES.index(value.strip().lower()) + 1
    raise UsageError(f"category must be a code 1-6 or one of {', '.join(CATEGORIES)}, got {value!r}")


def clean_concept(text: str) -> str:
    """The concept text, whitespace collapsed; one or two words of letters, digits, spaces, ' and -.

    Anything else (slashes, dots, control characters, over ``CONCEPT_MAX`` characters) is refused, so no
    field can carry a path.
    """
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise UsageError("write the concept the images show (one or two words)")
    if len(cleaned) > CONCEPT_MAX:
        raise UsageError(f"the concept is {len(cleaned)} characters; at most {CONCEPT_MAX}")
    if not CONCEPT_PATTERN.fullmatch(cleaned):
        raise UsageError("the concept may hold only letters, digits, spaces, ' and -")
    return cleaned.lower()


def refusal(marked_real: int, marked_catch: int) -> str | None:
    """Why a submission is refused under the paper's rules, or None when it is accepted."""
    total = marked_real + marked_catch
    if total < MIN_MARKED:
        return (f"only {total} images are marked; a unit is annotated only when at least {MIN_MARKED} images "
                "show its concept. Tick the images that match, or pick the concept most of them share.")
    if marked_catch:
        return ("some images that do not belong to this unit are still ticked; look again and untick every "
                "image that does not show the concept")
    return None


def order_seed(annotator: str, layer: str, unit: int, salt: str = "0") -> int:
    """The seed of one annotator's image order on one unit: a hash of (annotator, layer, unit, salt).

    Each worker sees the unit's images (and so its catch images) in an order of their own, yet the order is
    reproducible from names alone; ``salt`` is the task set's seed (``annotate --seed``).
    """
    text = "\x00".join((annotator, layer, str(int(unit)), salt))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def image_order(seed: int, n: int) -> list[int]:
    """The display order (a permutation of the stored slots ``0..n-1``) drawn from ``seed``."""
    return [int(k) for k in np.random.default_rng(seed).permutation(n)]
