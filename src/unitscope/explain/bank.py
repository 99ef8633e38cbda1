"""The probe set's concept masks and one unit's mask, bit-packed, with the counts IoU needs.

``ConceptBank`` holds every concept's mask over the probe set ([K, N, W] uint64, see ``bitmasks``),
its category and the images where each category is annotated. ``UnitMask`` holds one unit's active
pixels as its few non-zero words and its active pixels per image, so the unit's area within any
formula's domain (images where one of the formula's categories is annotated) is a sum over images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unitscope.explain.bitmasks import WORD_BITS, image_mask_words, pack, popcount, sparse_words
from unitscope.explain.formulas import Formula, Leaf, Not


@dataclass
class ConceptBank:
    """Bit-packed concept masks. ``annotated`` bool [N, C]: category c is annotated in image n."""

    numbers: np.ndarray  # [K] int64 label numbers
    names: tuple[str, ...]
    categories: np.ndarray  # [K] int64 index into category_names
    category_names: tuple[str, ...]
    words: np.ndarray  # [K, N, W] uint64
    annotated: np.ndarray  # [N, C] bool
    pixels: int  # label pixels per image
    _row: dict[int, int] = field(init=False, repr=False)
    _domain_words: np.ndarray = field(init=False, repr=False)  # [C, N*W]
    _extension_cache: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        k, n, w = self.words.shape
        if not (len(self.numbers) == len(self.names) == len(self.categories) == k):
            raise ValueError("one number, name and category per concept mask")
        if self.annotated.shape != (n, len(self.category_names)):
            raise ValueError(f"annotated must be [{n}, {len(self.category_names)}], got {self.annotated.shape}")
        self._row = {int(num): i for i, num in enumerate(self.numbers)}
        self.flat = self.words.reshape(k, n * w)
        self.sizes = popcount(self.flat)  # [K]
        self._domain_words = np.stack([image_mask_words(self.annotated[:, c], self.pixels).reshape(-1)
                                       for c in range(len(self.category_names))]) if self.category_names else \
            np.zeros((0, n * w), dtype=np.uint64)
        self.image_categories = (self.annotated.astype(np.int64) << np.arange(len(self.category_names))).sum(1)
        self.domain_pixels = self.annotated.sum(axis=0).astype(np.int64) * self.pixels  # [C]
        self._extension_cache = {}
        counts: dict[str, int] = {}
        for name in self.names:
            counts[name] = counts.get(name, 0) + 1
        # Broden and SceneWorld reuse names across categories (door the object, door the part): qualify those.
        self.labels = tuple(f"{name}({self.category_names[int(cat)]})" if counts[name] > 1 else name
                            for name, cat in zip(self.names, self.categories, strict=True))

    @classmethod
    def from_masks(cls, leaves: tuple[Leaf, ...], masks: np.ndarray, annotated: np.ndarray,
                   category_names: tuple[str, ...]) -> ConceptBank:
        """Pack bool [K, N, P] masks (row k = ``leaves[k]``)."""
        return cls(np.array([leaf.number for leaf in leaves], dtype=np.int64), tuple(leaf.name for leaf in leaves),
                   np.array([leaf.category for leaf in leaves], dtype=np.int64), category_names, pack(masks),
                   np.asarray(annotated, dtype=bool), int(masks.shape[-1]))

    @property
    def num_images(self) -> int:
        return int(self.words.shape[1])

    @property
    def words_per_image(self) -> int:
        return int(self.words.shape[2])

    def __len__(self) -> int:
        return int(self.words.shape[0])

    def leaf(self, row: int) -> Leaf:
        return Leaf(int(self.numbers[row]), self.labels[row], int(self.categories[row]))

    def row_of(self, leaf: Leaf) -> int:
        return self._row[leaf.number]

    def domain_words(self, category: int) -> np.ndarray:
        """[N*W] bits of every pixel of the images where ``category`` is annotated."""
        return np.asarray(self._domain_words[category])

    def bits(self, formula: Formula) -> np.ndarray:
        """[N*W] uint64: the formula's mask (NOT within the images where the concept's category is annotated)."""
        if isinstance(formula, Leaf):
            return np.asarray(self.flat[self.row_of(formula)])
        if isinstance(formula, Not):
            return np.asarray(self.domain_words(formula.leaf.category) & ~self.flat[self.row_of(formula.leaf)])
        left, right = self.bits(formula.left), self.bits(formula.right)
        return np.asarray(left & right if formula.op == "and" else left | right)

    def overlaps(self, key: str, bits: np.ndarray) -> np.ndarray:
        """[K] |formula ∩ concept k| for every concept; cached by ``key``, the formula's chain of label
        numbers (units share beam formulas; names may repeat across categories, numbers do not)."""
        found = self._extension_cache.get(key)
        if found is None:
            found = popcount(self.flat & bits[None, :])
            self._extension_cache[key] = found
        return found


@dataclass
class UnitMask:
    """One unit's active pixels: non-zero words of its bit mask and active pixels per image."""

    index: np.ndarray  # [M] int64 word positions in the flat [N*W] mask
    value: np.ndarray  # [M] uint64
    per_image: np.ndarray  # [N] int64
    words_per_image: int
    _area: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_bits(cls, flat_bits: np.ndarray, bank: ConceptBank) -> UnitMask:
        """From set bit positions in the flat [N*W*64] layout of ``bank``."""
        total = bank.num_images * bank.words_per_image
        index, value = sparse_words(flat_bits, total)
        per_image = np.bincount(index // bank.words_per_image, weights=popcount(value[:, None]),
                                minlength=bank.num_images).astype(np.int64)
        return cls(index, value, per_image, bank.words_per_image)

    @classmethod
    def from_bool(cls, mask: np.ndarray, bank: ConceptBank) -> UnitMask:
        """From a bool [N, P] mask over the bank's images."""
        image, pixel = np.nonzero(np.asarray(mask, dtype=bool))
        return cls.from_bits(image * (bank.words_per_image * WORD_BITS) + pixel, bank)

    @property
    def total(self) -> int:
        return int(self.per_image.sum())

    def area(self, domain: int, bank: ConceptBank) -> int:
        """Active pixels in the images where at least one category of the bit set ``domain`` is annotated."""
        found = self._area.get(domain)
        if found is None:
            found = int(self.per_image[(bank.image_categories & domain) != 0].sum())
            self._area[domain] = found
        return found

    def overlap_per_image(self, bits: np.ndarray) -> np.ndarray:
        """[N] |unit ∩ mask| per image for a flat [N*W] mask."""
        counts = popcount((bits[self.index] & self.value)[:, None])
        return np.bincount(self.index // self.words_per_image, weights=counts,
                           minlength=len(self.per_image)).astype(np.int64)
