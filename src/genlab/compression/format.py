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
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from ..errors import GenlabError

MAGIC = b"\x89GLC"
FORMAT_VERSION = 1
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


def pack(glc: GlcFile) -> bytes:
    """GlcFile -> bytes, with the length and CRC filled in."""
    if len(glc.sizes) != len(glc.names):
        raise ValueError("one name per image")
    if len(glc.sizes) > 0xFFFF:
        raise GenlabError(f"a .glc file holds at most 65535 images, not {len(glc.sizes)}")
    body = [_HEAD.pack(glc.model_id, glc.quality, len(glc.sizes))]
    for (h, w, c), name in zip(glc.sizes, glc.names, strict=True):
        raw = name.encode()[:255]
        if not (0 < h <= 0xFFFF and 0 < w <= 0xFFFF and c in (1, 3)):
            raise GenlabError(f"image {name!r} of size {h}x{w}x{c} cannot be stored")
        body.append(_IMAGE.pack(h, w, c, len(raw)) + raw)
    body.append(struct.pack(">I", len(glc.payload)) + glc.payload)
    rest = b"".join(body)
    total = _ENVELOPE.size + len(rest) + 4
    head = _ENVELOPE.pack(MAGIC, glc.version, total)
    data = head + rest
    return data + struct.pack(">I", zlib.crc32(data))


def unpack(data: bytes, *, source: str = "file") -> GlcFile:
    """Bytes -> GlcFile, checking magic, length, CRC and version in that order."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise GenlabError(f"{source} is not a .glc file (wrong magic bytes)")
    if len(data) < _ENVELOPE.size + 4:
        raise GenlabError(f"{source} is truncated ({len(data)} bytes, shorter than any .glc header)")
    _, version, total = _ENVELOPE.unpack_from(data)
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
    try:
        pos = _ENVELOPE.size
        model_id, quality, count = _HEAD.unpack_from(data, pos)
        pos += _HEAD.size
        sizes, names = [], []
        for _ in range(count):
            h, w, c, n = _IMAGE.unpack_from(data, pos)
            pos += _IMAGE.size
            names.append(data[pos:pos + n].decode())
            sizes.append((h, w, c))
            pos += n
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 4
        payload = data[pos:pos + length]
        if pos + length != total - 4 or length % 4:
            raise ValueError("payload length does not match the file")
    except (struct.error, UnicodeDecodeError, ValueError) as err:
        raise GenlabError(f"{source} is corrupt ({err})") from None
    return GlcFile(model_id=model_id, quality=quality, sizes=sizes, names=names, payload=payload,
                   version=version)
