"""An uploaded image, read with a cap and decoded under a pixel limit; anything else is refused early.

The body is refused from its Content-Length alone when that is over the limit, and a body without one is
read in chunks that stop at the limit, so an oversized upload is never held whole. Only images PIL can
decode and verify are accepted (415 otherwise, with what is accepted).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
MAX_FIELD = 256


@dataclass(frozen=True)
class Upload:
    """One decoded upload: the image (RGB), its file name as given (for display only) and the chosen run."""

    image: Image.Image
    filename: str
    run: str


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the upload is larger than {limit // (1024 * 1024)} MB; send a smaller image")


async def capped(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body in chunks, refused (413) from its Content-Length or as soon as ``limit`` is passed."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or len(length) > 15):
        raise HTTPException(400, "the Content-Length header is not a number")
    if length is not None and int(length) > limit:
        raise too_large(limit)
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        yield chunk


async def read_upload(request: Request, limit: int, max_pixels: int) -> Upload:
    """The ``image`` file and ``run`` field of a multipart form, the image decoded (see :func:`decode_image`)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        raise HTTPException(415, "send the image as a multipart form (field 'image'), as the upload form does")
    parser = MultiPartParser(request.headers, capped(request, limit), max_files=1, max_fields=2,
                             max_part_size=MAX_FIELD)
    try:
        form = await parser.parse()
    except MultiPartException as err:
        raise HTTPException(400, f"the form could not be read ({err.message})") from None
    try:
        upload, run = form.get("image"), form.get("run", "")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "the form has no image file; choose one in the 'image' field")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise too_large(limit)
        name = (upload.filename or "image")[:MAX_FIELD]
    finally:
        await form.close()
    return Upload(decode_image(data, max_pixels), name, run if isinstance(run, str) else "")


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """``data`` as an RGB image: one of ``FORMATS``, at most ``max_pixels`` pixels (checked from the header,
    before any pixel is decoded), verified, first frame only. 415 for anything else, 413 for too many pixels."""
    refused = HTTPException(415, f"this is not an image unitscope can read; upload a {', '.join(FORMATS)} file")
    if not data:
        raise HTTPException(422, "the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    raise HTTPException(413, f"the image has {width}×{height} pixels; the limit is {max_pixels:,} "
                                             "pixels: send a smaller one")
                probe.verify()
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                image.seek(0)
                return image.convert("RGB")
    except HTTPException:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HTTPException(413, f"the image has too many pixels; the limit is {max_pixels:,}: send a smaller "
                                 "one") from None
    except (UnidentifiedImageError, OSError,
            SyntaxError, ValueError, EOFError, TypeError, IndexError, KeyError, MemoryError):
        raise refused from None
