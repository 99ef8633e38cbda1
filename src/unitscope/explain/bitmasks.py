"""Boolean masks over the probe set packed 64 pixels to a word, and population counts over them.

A mask covers N images of P label pixels each. Each image takes ``words_per_image(P)`` uint64 words
(pixel p of an image is bit p % 64 of its word p // 64, little-endian bit order; the padding bits of
its last word stay 0), so the words of one image are a contiguous slice and image-level masks
(whole-image labels, the images where a category is annotated) are runs of all-ones words.
Intersections are ``&`` and sizes are popcounts: 64 pixels per instruction instead of one byte each.
"""

from __future__ import annotations

import numpy as np

WORD_BITS: int = 64
_BYTE_COUNTS: np.ndarray = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def words_per_image(pixels: int) -> int:
    """uint64 words that hold one image's ``pixels`` bits."""
    return -(-pixels // WORD_BITS)


def pack(masks: np.ndarray) -> np.ndarray:
    """bool [..., N, P] → uint64 [..., N, words_per_image(P)], zero padding bits."""
    masks = np.asarray(masks, dtype=bool)
    pixels = masks.shape[-1]
    padded = words_per_image(pixels) * WORD_BITS
    if padded != pixels:
        width = [(0, 0)] * (masks.ndim - 1) + [(0, padded - pixels)]
        masks = np.pad(masks, width)
    packed = np.packbits(masks, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack(words: np.ndarray, pixels: int) -> np.ndarray:
    """uint64 [..., N, W] → bool [..., N, pixels] (the inverse of :func:`pack`)."""
    raw = np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)
    return np.unpackbits(raw, axis=-1, count=pixels, bitorder="little").astype(bool)


def popcount(words: np.ndarray, axis: int | tuple[int, ...] | None = -1) -> np.ndarray:
    """Set bits summed over ``axis`` (int64): numpy's ``bitwise_count`` where it exists, else a byte table."""
    counter = getattr(np, "bitwise_count", None)
    if counter is not None:
        bits = counter(words)
    else:  # numpy < 2: count each byte with a lookup table
        as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(*words.shape, words.dtype.itemsize)
        bits = _BYTE_COUNTS[as_bytes].sum(axis=-1, dtype=np.int64)
    return np.asarray(bits.sum(axis=axis, dtype=np.int64))


def sparse_words(flat_bits: np.ndarray, total_words: int) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero words of a mask given by its set bit positions: (word index int64, word uint64).

    Units fire on ~0.5 % of pixels in a few blobs, so their masks touch few words; intersecting a
    concept with a unit needs only those.
    """
    bits = np.unique(np.asarray(flat_bits, dtype=np.int64))
    if bits.size and (bits[0] < 0 or bits[-1] >= total_words * WORD_BITS):
        raise ValueError("bit positions fall outside the mask")
    word = bits // WORD_BITS
    value = np.left_shift(np.uint64(1), (bits % WORD_BITS).astype(np.uint64))
    index, starts = np.unique(word, return_index=True)
    if not index.size:
        return index, np.zeros(0, dtype=np.uint64)
    return index, np.bitwise_or.reduceat(value, starts)


def image_mask_words(images: np.ndarray, pixels: int) -> np.ndarray:
    """uint64 [N, W]: every pixel bit of the images where ``images`` (bool [N]) is True, padding clear."""
    return pack(np.broadcast_to(np.asarray(images, dtype=bool)[:, None], (len(images), pixels)))
