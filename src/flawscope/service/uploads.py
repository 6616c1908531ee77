"""Uploaded images: read the request body within a size limit, check the image, save it.

An upload is either a multipart form with the image in field ``file`` (and optional fields
``batch`` and ``group``), or the raw image bytes as the body with an ``image/*`` (or
``application/octet-stream``) content type. The body is read in chunks and refused (413) as soon
as it passes the limit, before anything is parsed or decoded. The image is then identified from
its header alone (no pixel is decoded), so a decompression bomb (a small file claiming, say,
100000 x 100000 pixels) is refused (413) before it can take any memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from flawscope.data.io import IMAGE_SUFFIXES
from flawscope.service.errors import ServiceError

#: Pillow format name -> file suffix of the formats flawscope reads.
FORMATS: dict[str, str] = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif"}
#: Room for the multipart boundaries and headers around the file, on top of the upload limit.
MULTIPART_SLACK = 64 * 1024
#: Longest batch or group name (the store's column width).
MAX_NAME = 255
_RAW_TYPES = ("image/", "application/octet-stream")
_SEND_HOW = (
    "send the image as multipart form field 'file', or as the raw body with "
    "Content-Type image/png (or image/jpeg, image/bmp, image/tiff)"
)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Upload:
    """One uploaded image, not checked yet.

    Attributes:
        data: the image file's bytes (not empty).
        filename: the client's file name (``""`` when it sent none).
        fields: the form fields besides the file (``batch``, ``group``), empty for a raw body.
    """

    data: bytes
    filename: str = ""
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says: Pillow ``format`` name, ``width`` x ``height`` pixels."""

    format: str
    width: int
    height: int

    @property
    def suffix(self) -> str:
        """The file suffix of the format (``.png``, ``.jpg``, ``.bmp``, ``.tif``)."""
        return FORMATS[self.format]


def _too_large(size: str, limit: int) -> ServiceError:
    return ServiceError(
        413,
        f"upload of {size} is larger than the {limit / 2**20:g} MiB limit",
        "send a smaller image, or start the server with a larger --max-upload-mb",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read in chunks; refused as soon as it passes ``limit`` bytes.

    Raises:
        ServiceError: 413 when the Content-Length or the bytes received exceed ``limit``.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(f"{int(declared):,} bytes", limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(f"more than {limit:,} bytes", limit)
    return bytes(body)


async def _parse_form(request: Request, body: bytes) -> Upload:
    """The ``file`` field and the text fields of a multipart body already read."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except Exception as exc:  # starlette raises HTTPException / MultiPartException variants
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
        raise ServiceError(400, f"malformed multipart body ({detail})", _SEND_HOW) from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ServiceError(422, "the multipart upload has no file field 'file'", _SEND_HOW)
        data = await upload.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return Upload(data, upload.filename or "", fields)
    finally:
        await form.close()


async def read_upload(request: Request, limit: int, filename: str = "") -> Upload:
    """The uploaded image of an inspection request (see the module docstring).

    Args:
        request: the incoming request.
        limit: largest image accepted, in bytes.
        filename: the file name of a raw-body upload (a multipart upload carries its own).

    Raises:
        ServiceError: 400 empty body or empty file, or a malformed multipart body; 413 larger
            than ``limit``; 415 a content type that is neither multipart nor an image; 422 a
            multipart form without field ``file``.
    """
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    multipart = ctype == "multipart/form-data"
    body = await read_body(request, limit + MULTIPART_SLACK if multipart else limit)
    if not body:
        raise ServiceError(400, "the request body is empty", _SEND_HOW)
    if multipart:
        upload = await _parse_form(request, body)
        if not upload.data:
            raise ServiceError(400, f"the uploaded file {upload.filename!r} is empty", _SEND_HOW)
        if len(upload.data) > limit:
            raise _too_large(f"{len(upload.data):,} bytes", limit)
        return upload
    if not ctype.startswith(_RAW_TYPES):
        raise ServiceError(415, f"unsupported content type {ctype or '(none)'!r}", _SEND_HOW)
    return Upload(body, filename)


def check_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Identify an image from its header (no pixel decoded) and check its size.

    Args:
        data: the file's bytes.
        max_pixels: largest width x height accepted.

    Raises:
        ServiceError: 415 not an image, or a format flawscope does not read; 413 more than
            ``max_pixels`` pixels (or more than twice Pillow's ``Image.MAX_IMAGE_PIXELS``).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            with Image.open(BytesIO(data)) as img:
                info = ImageInfo(str(img.format), int(img.width), int(img.height))
    except Image.DecompressionBombError as exc:
        raise ServiceError(
            413,
            f"image claims too many pixels ({exc})",
            f"send an image of at most {max_pixels:,} pixels",
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ServiceError(
            415,
            "the upload is not an image flawscope can read",
            "send a PNG, JPEG, BMP or TIFF file",
        ) from exc
    if info.format not in FORMATS:
        raise ServiceError(
            415,
            f"image format {info.format} is not supported",
            "send a PNG, JPEG, BMP or TIFF file",
        )
    if info.width * info.height > max_pixels:
        raise ServiceError(
            413,
            f"image of {info.width}x{info.height} pixels is above the {max_pixels:,} pixel limit",
            "downscale it, or start the server with a larger --max-pixels",
        )
    return info


def check_name(value: str | None, what: str) -> str:
    """A batch or group name, stripped; ``""`` for None.

    Raises:
        ServiceError: 422 longer than :data:`MAX_NAME` characters or with control characters.
    """
    text = (value or "").strip()
    if len(text) > MAX_NAME:
        raise ServiceError(
            422, f"{what} name is {len(text)} characters long", f"use at most {MAX_NAME}"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ServiceError(
            422, f"{what} name {text!r} has control characters", "use printable characters"
        )
    return text


def content_hash(data: bytes) -> str:
    """SHA-256 of the bytes as 64 hex digits (the store's content hash)."""
    return hashlib.sha256(data).hexdigest()


def upload_name(filename: str, digest: str, info: ImageInfo) -> str:
    """``<safe stem>-<16 hex digits of the hash><suffix>``: unique per content, readable.

    The client's suffix is kept when flawscope reads it, else the format's suffix is used; the
    stem keeps letters, digits, ``.``, ``_`` and ``-`` (at most 60 characters; ``image`` when
    nothing is left).
    """
    base = Path(filename.replace("\\", "/")).name
    suffix = Path(base).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        suffix = info.suffix
    stem = _SAFE.sub("_", Path(base).stem).strip("._-")[:60] or "image"
    return f"{stem}-{digest[:16]}{suffix}"


def save_upload(data: bytes, folder: Path, name: str) -> tuple[Path, bool]:
    """Write ``data`` to ``folder/name`` in one step (temporary file, then rename).

    Returns:
        ``(path, created)``; ``created`` is False when the file was there already (the name
        holds the content hash, so it holds the same bytes) and nothing was written.

    Raises:
        OSError: the folder or the file cannot be written.
    """
    path = folder / name
    if path.is_file() and path.stat().st_size == len(data):
        return path, False
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, True
