"""The ``.glc`` file: many images coded by one learned codec, one shared header, one CRC.

Layout (big-endian integers)::

    offset  size  field
    0       4     magic b"\\x89GLC" (the high byte stops text tools from taking it for ASCII)
    4       1     format version (FORMAT_VERSION)
    5       4     total file length in bytes (tells a truncated file from a corrupt one)
    9       8     model identity: the first 8 bytes of SHA-256 over the codec's config,
                  weights and integer coding tables (``compression.codec.model_identity``)
    17      1     quality index of the model in its ladder
    18      2     image count N
    then N x      H (u16), W (u16), C (u8), name length (u8), name (UTF-8)
    then    4     payload length P, then P bytes: the range coder's 32-bit words, little-endian
    last    4     CRC32 of every byte before it

The envelope (magic, version, length, CRC) never changes between versions; what follows the
length may. Every parse error is a ``GenlabError`` with one line that says which check failed.

Limits, enforced by ``pack`` (so ``compress`` never writes what ``unpack`` refuses) and by ``unpack``
before anything is allocated from a header field:

- C is 1 or 3; H and W are 1..65535; H * W <= ``MAX_IMAGE_PIXELS`` (2048 x 2048) per image and the
  images of a file hold <= ``MAX_FILE_PIXELS`` pixels in all. Decoding needs memory in proportion to
  pixels (about 200 bytes a pixel for the default codec, batches of at most ``MAX_IMAGE_PIXELS``), so
  these caps bound what a file can make ``decompress`` allocate.
- A whole file is at most ``MAX_FILE_BYTES``; the payload is empty exactly when N = 0 (the range coder
  writes at least one word for one integer).
- A name is 1..``MAX_NAME_BYTES`` bytes of UTF-8 without NUL, control characters, ``/`` or ``\\``,
  and is not ``.`` or ``..``; ``decompress`` writes it as ``png_name(name)`` inside the output folder,
  and no two names of a file give the same PNG name (compared case-insensitively, so a file does not
  lose an image on a case-insensitive file system). ``MAX_NAME_BYTES`` leaves room for ``.png`` and
  the 14 characters of the temporary file an atomic write adds within NAME_MAX (255 bytes).
"""

from __future__ import annotations

import struct
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import GenlabError

MAGIC = b"\x89GLC"
FORMAT_VERSION = 1
MAX_IMAGE_PIXELS = 2048 * 2048
MAX_FILE_PIXELS = 4 * MAX_IMAGE_PIXELS
MAX_FILE_BYTES = 1 << 28
MAX_NAME_BYTES = 200
_ENVELOPE = struct.Struct(">4sBI")  # magic, version, total length
_HEAD = struct.Struct(">8sBH")  # model id, quality, image count
_IMAGE = struct.Struct(">HHBB")  # H, W, C, name length
HEADER_BYTES = _ENVELOPE.size + _HEAD.size + 4 + 4  # fixed bytes per file (+ payload length, CRC)


@dataclass(frozen=True)
class GlcFile:
    """A parsed ``.glc`` file; ``sizes`` are (H, W, C) per image, in file order."""

    model_id: bytes
    quality: int
    sizes: list[tuple[int, int, int]]
    names: list[str]
    payload: bytes
    version: int = FORMAT_VERSION
    meta: dict = field(default_factory=dict)

    def header_bytes(self) -> int:
        """Bytes of everything but the payload: the per-file and per-image overhead."""
        return HEADER_BYTES + sum(_IMAGE.size + len(n.encode()) for n in self.names)


def png_name(name: str) -> str:
    """The file ``decompress`` writes for a stored name: the name itself if it ends in .png, else its
    stem + .png (``x.bmp`` -> ``x.png``)."""
    if name.lower().endswith(".png"):
        return name
    stem, dot, _ = name.rpartition(".")
    return f"{stem if dot and stem else name}.png"


def _shown(name: str) -> str:
    """``repr(name)``, shortened to its first 40 characters for a one-line message."""
    return repr(name) if len(name) <= 40 else repr(name[:40]) + "..."


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be stored or written (a phrase), or None if it can."""
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if not raw:
        return "is empty"
    if len(raw) > MAX_NAME_BYTES:
        return f"is {len(raw)} bytes long; names are at most {MAX_NAME_BYTES} bytes of UTF-8"
    if "/" in name or "\\" in name or name in (".", ".."):
        return "is a path, not a file name"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "holds a NUL or another control character"
    return None


def check_names(names: Sequence[str], *, source: str | None = None) -> None:
    """GenlabError unless every name can be stored and written, and no two give the same PNG name.

    ``source``: the file the names come from (``decompress``), or None for names given to ``compress``."""
    seen: dict[str, str] = {}
    for i, name in enumerate(names):
        problem = name_problem(name)
        if problem is not None:
            where = f"{source} is corrupt: image {i}'s name" if source else "the image name"
            raise GenlabError(f"{where} {_shown(name)} {problem}")
        out = png_name(name)
        key = unicodedata.normalize("NFC", out).casefold()
        if key in seen:
            first = seen[key]
            if source:
                raise GenlabError(f"{source} is corrupt: images {_shown(first)} and {_shown(name)} would both "
                                  f"be written as {_shown(out)}")
            pair = f"two inputs are named {_shown(name)}" if first == name else (
                f"inputs {_shown(first)} and {_shown(name)} would both decompress to {_shown(out)}")
            raise GenlabError(f"{pair}: one would overwrite the other; rename one of them")
        seen[key] = name


def check_sizes(sizes: Sequence[tuple[int, int, int]], *, source: str | None = None) -> None:
    """GenlabError unless every (H, W, C) and their total pixel count are within the format's limits."""
    where = f"{source} is corrupt: image" if source else "image"
    total = 0
    for i, (h, w, c) in enumerate(sizes):
        if c not in (1, 3) or not (0 < h <= 0xFFFF and 0 < w <= 0xFFFF):
            raise GenlabError(f"{where} {i} is {h}x{w} with {c} channel(s); a .glc image is 1..65535 pixels "
                              "on a side with 1 or 3 channels")
        if h * w > MAX_IMAGE_PIXELS:
            raise GenlabError(f"{where} {i} is {h}x{w} = {h * w:,} pixels; a .glc image holds at most "
                              f"{MAX_IMAGE_PIXELS:,} pixels (2048x2048)")
        total += h * w
    if total > MAX_FILE_PIXELS:
        raise GenlabError(f"{source + ' is corrupt: its' if source else 'the'} {len(sizes)} images hold "
                          f"{total:,} pixels; a .glc file holds at most {MAX_FILE_PIXELS:,} (split the images "
                          "into several files)")


def pack(glc: GlcFile) -> bytes:
    """GlcFile -> bytes, with the length and CRC filled in."""
    if len(glc.sizes) != len(glc.names):
        raise ValueError("one name per image")
    if len(glc.sizes) > 0xFFFF:
        raise GenlabError(f"a .glc file holds at most 65535 images, not {len(glc.sizes)}")
    check_sizes(glc.sizes)
    check_names(glc.names)
    body = [_HEAD.pack(glc.model_id, glc.quality, len(glc.sizes))]
    for (h, w, c), name in zip(glc.sizes, glc.names, strict=True):
        raw = name.encode()
        body.append(_IMAGE.pack(h, w, c, len(raw)) + raw)
    body.append(struct.pack(">I", len(glc.payload)) + glc.payload)
    rest = b"".join(body)
    total = _ENVELOPE.size + len(rest) + 4
    if total > MAX_FILE_BYTES:
        raise GenlabError(f"the .glc file would be {total:,} bytes; a .glc file is at most {MAX_FILE_BYTES:,} "
                          "bytes (split the images into several files)")
    head = _ENVELOPE.pack(MAGIC, glc.version, total)
    data = head + rest
    return data + struct.pack(">I", zlib.crc32(data))


def unpack(data: bytes, *, source: str = "file") -> GlcFile:
    """Bytes -> GlcFile, checking magic, length, CRC and version in that order, then every header
    field against the format's limits (sizes, names, payload length)."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise GenlabError(f"{source} is not a .glc file (wrong magic bytes)")
    if len(data) < _ENVELOPE.size + 4:
        raise GenlabError(f"{source} is truncated ({len(data)} bytes, shorter than any .glc header)")
    _, version, total = _ENVELOPE.unpack_from(data)
    if max(len(data), total) > MAX_FILE_BYTES:
        raise GenlabError(f"{source} is {max(len(data), total):,} bytes; a .glc file is at most {MAX_FILE_BYTES:,} "
                          "bytes")
    if len(data) < total:
        raise GenlabError(f"{source} is truncated ({len(data)} of {total} bytes)")
    if len(data) > total:
        raise GenlabError(f"{source} is corrupt ({len(data) - total} bytes past the end of the .glc data)")
    (crc,) = struct.unpack_from(">I", data, total - 4)
    if zlib.crc32(data[:total - 4]) != crc:
        raise GenlabError(f"{source} is corrupt (CRC32 mismatch: a byte was changed)")
    if version != FORMAT_VERSION:
        raise GenlabError(f"{source} is .glc format version {version}; this genlab reads version "
                          f"{FORMAT_VERSION}")
    end = total - 4  # the CRC's offset: no field may reach into it
    fields = memoryview(data)[:end]
    try:
        pos = _ENVELOPE.size
        model_id, quality, count = _HEAD.unpack_from(fields, pos)
        pos += _HEAD.size
        sizes, names = [], []
        for i in range(count):
            h, w, c, n = _IMAGE.unpack_from(fields, pos)
            pos += _IMAGE.size
            if pos + n > end:
                raise ValueError("a name runs past the end of the file")
            try:
                names.append(data[pos:pos + n].decode())
            except UnicodeDecodeError:
                raise ValueError(f"image {i}'s name is not valid UTF-8") from None
            sizes.append((h, w, c))
            pos += n
        (length,) = struct.unpack_from(">I", fields, pos)
        pos += 4
        if pos + length != end or length % 4:
            raise ValueError(f"payload length {length} does not match the file")
        if (length == 0) != (count == 0):
            raise ValueError(f"{count} image(s) with a payload of {length} bytes")
    except (struct.error, ValueError) as err:
        raise GenlabError(f"{source} is corrupt ({err})") from None
    check_sizes(sizes, source=source)
    check_names(names, source=source)
    return GlcFile(model_id=model_id, quality=quality, sizes=sizes, names=names, payload=data[pos:end],
                   version=version)
