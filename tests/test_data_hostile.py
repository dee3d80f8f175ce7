"""Hostile data files: bombs, lying headers, absurd sizes and bad labels are one line and exit code 2.

The hostile files are built here, small on disk: a deflate stream of zeros is a 1 MiB chunk compressed once
(after a full flush it compresses the same way every time) and repeated, so a 7.3 GB zip member takes 7 MB
and a few milliseconds; its CRC-32 is computed without the zeros (GF(2) matrix powers), so every file is valid.
A bzip2 stream is built the same way from one compressed block repeated bit by bit.

The CLI runs in a subprocess under an address-space ceiling (``RLIMIT_AS``: the CLI's own footprint plus
2.5 GB), and its peak resident memory is asserted: a refused bomb never gets the memory it asks for.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import math
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from genlab.config import DataConfig
from genlab.data import load_data
from genlab.data.budget import SizeBudget, open_image
from genlab.errors import GenlabError

CEILING_MARGIN = 2_500 * 1024**2  # bytes of address space the CLI may map beyond its footprint before loading
RESIDENT_MARGIN = 100 * 1024**2  # peak resident bytes a refused file may add to the CLI's own


# --- building hostile files cheaply ------------------------------------------------------------------
_CHUNK = 1 << 20


def _deflate(prefix: bytes, zeros: int) -> bytes:
    """A raw deflate stream of ``prefix`` followed by ``zeros`` zero bytes (about zeros / 1000 bytes long)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [co.compress(prefix), co.flush(zlib.Z_FULL_FLUSH)]
    if zeros >= _CHUNK:
        chunk = co.compress(bytes(_CHUNK)) + co.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every chunk
        parts.append(chunk * (zeros // _CHUNK))
    return b"".join([*parts, co.compress(bytes(zeros % _CHUNK)), co.flush(zlib.Z_FINISH)])


def _crc32_zeros(crc: int, n: int) -> int:
    """``zlib.crc32(bytes(n), crc)`` in O(log n): the CRC register advanced by n zero bytes is a linear map
    of the register, a matrix over GF(2) raised to the power 8n (zlib's crc32_combine)."""
    def times(matrix: list[int], vector: int) -> int:
        out = 0
        for row in matrix:
            if not vector:
                break
            out ^= row if vector & 1 else 0
            vector >>= 1
        return out

    matrix = [0xEDB88320] + [1 << i for i in range(31)]  # one zero bit: bit 0 feeds back the polynomial
    for _ in range(3):  # one zero byte
        matrix = [times(matrix, row) for row in matrix]
    register = ~crc & 0xFFFFFFFF
    while n:
        if n & 1:
            register = times(matrix, register)
        n >>= 1
        matrix = [times(matrix, row) for row in matrix] if n else matrix
    return ~register & 0xFFFFFFFF


def _zip(path: Path, name: str, data: bytes, *, size: int, crc: int, method: int) -> None:
    """A zip (zip64 sizes) of one member: ``data`` compressed with ``method`` (8 deflate, 12 bzip2), declared
    to hold ``size`` bytes of CRC-32 ``crc``."""
    name_b = name.encode()
    extra = struct.pack("<HHQQ", 1, 16, size, len(data))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 33, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                        len(name_b), len(extra)) + name_b + extra
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 33, crc, 0xFFFFFFFF,
                          0xFFFFFFFF, len(name_b), len(extra), 0, 0, 0, 0, 0) + name_b + extra
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    path.write_bytes(local + data + central + end)


def _zip64(path: Path, name: str, prefix: bytes, zeros: int) -> None:
    """A zip holding one deflated member: ``prefix`` then ``zeros`` zero bytes."""
    _zip(path, name, _deflate(prefix, zeros), size=len(prefix) + zeros,
         crc=_crc32_zeros(zlib.crc32(prefix), zeros), method=8)


def _bits(data: bytes) -> str:
    return format(int.from_bytes(data, "big"), f"0{8 * len(data)}b")


_BZ_BLOCK, _BZ_END = format(0x314159265359, "048b"), format(0x177245385090, "048b")  # bzip2's magic numbers


def _bzip2(prefix: bytes, blocks: int, block: int = 10_000_000) -> bytes:
    """A bzip2 stream of ``prefix`` and zeros, ``block`` bytes a block (35 bytes compressed): a block of
    zeros is compressed once and its bits repeated; the stream's CRC combines the blocks' CRCs."""
    def one_block(data: bytes) -> tuple[str, int]:
        bits = _bits(bz2.compress(data, 9))  # "BZh9", one block (magic, CRC, data), end magic, CRC
        assert bits[32:80] == _BZ_BLOCK and bits.count(_BZ_BLOCK) == 1
        return bits[32:bits.rindex(_BZ_END)], int(bits[80:112], 2)

    parts = [one_block(prefix + bytes(block - len(prefix)))] + [one_block(bytes(block))] * (blocks - 1)
    combined = 0
    for _, crc in parts:
        combined = (((combined << 1) | (combined >> 31)) & 0xFFFFFFFF) ^ crc
    bits = _bits(b"BZh9") + "".join(b for b, _ in parts) + _BZ_END + format(combined, "032b")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _gzip(path: Path, prefix: bytes, zeros: int) -> None:
    """A gzip file of ``prefix`` then ``zeros`` zero bytes."""
    trailer = struct.pack("<II", _crc32_zeros(zlib.crc32(prefix), zeros), (len(prefix) + zeros) % 2**32)
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + _deflate(prefix, zeros) + trailer)


def _png(path: Path, width: int, height: int) -> None:
    """A valid grey PNG of ``width`` x ``height`` black pixels (a few bytes per thousand pixels)."""
    raw = height * (width + 1)  # each row: filter byte 0, then width zero bytes
    idat = b"\x78\x9c" + _deflate(b"", raw) + struct.pack(">I", (raw % 65521) << 16 | 1)  # zlib + Adler-32

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _npy_header(shape: tuple[int, ...], dtype=np.uint8) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": shape})
    return out.getvalue()


def _idx_header(*dims: int, magic: int = 0x803) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims)


# --- the bad-input table ------------------------------------------------------------------------------
def npz_zip_bomb(tmp: Path) -> str:  # 7 MB on disk; x.npy inflates to 7.3 GB
    shape = (9_300_000, 28, 28)
    _zip64(tmp / "bomb.npz", "x.npy", _npy_header(shape), math.prod(shape))
    return f"npz:{tmp / 'bomb.npz'}"


def npz_bzip2_bomb(tmp: Path) -> str:  # 17 KB; zipfile inflates 1.2 GB on the first 4 KB it reads
    header = _npy_header((10, 4, 4))  # the member declares 10 x 4 x 4 bytes, and its CRC is theirs
    _zip(tmp / "bz.npz", "x.npy", _bzip2(header, blocks=500), size=len(header) + 160,
         crc=_crc32_zeros(zlib.crc32(header), 160), method=12)
    return f"npz:{tmp / 'bz.npz'}"


def npz_header_lies(tmp: Path) -> str:  # a few hundred bytes whose header declares 93 GiB
    with zipfile.ZipFile(tmp / "lie.npz", "w") as z:
        z.writestr("x.npy", _npy_header((100_000, 1_000_000)) + bytes(64))
    return f"npz:{tmp / 'lie.npz'}"


def idx_gzip_bomb(tmp: Path) -> str:  # 4.6 MB; the header promises 20 images, the stream inflates to 4.7 GB
    _gzip(tmp / "bomb-images-idx3-ubyte.gz", _idx_header(20, 28, 28), 4_700_000_000)
    return f"idx:{tmp / 'bomb-images-idx3-ubyte.gz'}"


def idx_gzip_bomb_declared(tmp: Path) -> str:  # the same size of stream, and a header that says so
    _gzip(tmp / "big-images-idx3-ubyte.gz", _idx_header(6_000_000, 28, 28), 6_000_000 * 28 * 28)
    return f"idx:{tmp / 'big-images-idx3-ubyte.gz'}"


def idx_dims_overflow(tmp: Path) -> str:  # 2**31 * 2**31 * 4 = 2**64: 0 in int64
    (tmp / "overflow.idx").write_bytes(_idx_header(2**31, 2**31, 4))
    return f"idx:{tmp / 'overflow.idx'}"


def npz_huge_labels(tmp: Path) -> str:  # one label of 10**9: 10**9 classes
    np.savez(tmp / "labels.npz", x=np.zeros((10, 4, 4), np.uint8), y=np.full(10, 10**9))
    return f"npz:{tmp / 'labels.npz'}"


def png_5000(tmp: Path) -> str:  # 25 KB
    _png(tmp / "p5000" / "a.png", 5000, 5000)
    return f"folder:{tmp / 'p5000'}"


def png_12000(tmp: Path) -> str:  # 140 KB; Pillow only warns
    _png(tmp / "p12000" / "a.png", 12000, 12000)
    return f"folder:{tmp / 'p12000'}"


def png_20000(tmp: Path) -> str:  # 390 KB; Pillow refuses it with its own error
    _png(tmp / "p20000" / "a.png", 20000, 20000)
    return f"folder:{tmp / 'p20000'}"


def thin_images(tmp: Path) -> str:  # five 1 x 60000 images
    for i in range(5):
        _png(tmp / "thin" / f"{i}.png", 60000, 1)
    return f"folder:{tmp / 'thin'}"


def npz_zero_size(tmp: Path) -> str:
    np.savez(tmp / "empty.npz", x=np.zeros((5, 0, 28), np.uint8))
    return f"npz:{tmp / 'empty.npz'}"


def idx_zero_size(tmp: Path) -> str:
    (tmp / "empty.idx").write_bytes(_idx_header(20, 0, 28))
    return f"idx:{tmp / 'empty.idx'}"


BAD_INPUTS = {  # builder -> what the one line must mention
    npz_zip_bomb: r"data\.max_bytes", npz_bzip2_bomb: r"x in .* is compressed with bzip2",
    npz_header_lies: r"header declares .* holds only",
    idx_gzip_bomb: r"longer than its header says", idx_gzip_bomb_declared: r"data\.max_bytes",
    idx_dims_overflow: r"data\.max_items", npz_huge_labels: r"data\.max_classes",
    png_5000: r"5000x5000 .*data\.max_pixels", png_12000: r"12000x12000 .*data\.max_pixels",
    png_20000: r"more than 178956970 pixels: more than data\.max_pixels=16777216 and more than Pillow",
    thin_images: r"60000x1 .*data\.max_side",
    npz_zero_size: r"\(5, 0, 28\).*no pixels", idx_zero_size: r"28x0 pixels: it has no pixels",
}
BOMBS = {npz_zip_bomb, npz_bzip2_bomb, npz_header_lies, idx_gzip_bomb, idx_gzip_bomb_declared, idx_dims_overflow,
         npz_huge_labels, png_5000, png_12000, png_20000, thin_images}


# --- running the CLI under a memory ceiling ---------------------------------------------------------
_RUNNER = """
import os, resource, runpy, sys
def peaks():
    status = dict(line.split(':', 1) for line in open('/proc/self/status'))
    with open(os.environ['PEAKS_FILE'], 'w') as out:
        out.write(' '.join(str(int(status[k].split()[0]) * 1024) for k in ('VmHWM', 'VmPeak')))
import atexit
atexit.register(peaks)
limit = int(os.environ.get('AS_LIMIT', 0))
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ['genlab', *sys.argv[1:]]
runpy.run_module('genlab', run_name='__main__')
"""


def run_cli(args: list[str], tmp: Path, limit: int = 0) -> tuple[subprocess.CompletedProcess, int, int]:
    """``genlab ARGS`` in a subprocess with the address space capped at ``limit`` bytes (0: no cap);
    returns the result and the process's peak resident and peak virtual bytes."""
    peaks = tmp / "peaks.txt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PEAKS_FILE=str(peaks), AS_LIMIT=str(limit))
    done = subprocess.run([sys.executable, "-c", _RUNNER, *args], capture_output=True, text=True, env=env,
                          cwd=tmp, timeout=600)
    resident, virtual = (int(v) for v in peaks.read_text().split())
    return done, resident, virtual


def train_args(spec: str, tmp: Path) -> list[str]:
    return ["train", "vae", "--data", spec, "--steps", "1", "--runs", str(tmp / "runs")]


@pytest.fixture(scope="module")
def footprint(tmp_path_factory) -> tuple[int, int]:
    """Peak resident and virtual bytes of ``genlab train`` stopping at its data (a missing file)."""
    tmp = tmp_path_factory.mktemp("footprint")
    done, resident, virtual = run_cli(train_args(f"npz:{tmp / 'missing.npz'}", tmp), tmp)
    assert done.returncode == 2 and "no such file" in done.stderr
    return resident, virtual


@pytest.mark.slow
@pytest.mark.parametrize("build", list(BAD_INPUTS), ids=lambda f: f.__name__)
def test_bad_data_is_one_line_and_exit_2(build, tmp_path, footprint):
    spec = build(tmp_path)
    assert sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()) < 8 * 1024**2  # small on disk
    resident, virtual = footprint
    done, peak_resident, _ = run_cli(train_args(spec, tmp_path), tmp_path, limit=virtual + CEILING_MARGIN)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("genlab: error: ") and "Traceback" not in done.stderr
    assert re.search(BAD_INPUTS[build], lines[0]), lines[0]
    assert not (tmp_path / "runs").exists()  # nothing written
    if build in BOMBS:
        assert peak_resident < resident + RESIDENT_MARGIN


_LOADER = """
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from genlab.data import load_data
from genlab.errors import GenlabError
for spec, options in json.loads(sys.argv[2]):
    try:
        result = f'ok {tuple(load_data(spec, **options).x.shape)}'
    except GenlabError as err:
        result = f'GenlabError {err}'
    except BaseException as err:  # MemoryError under the ceiling, or any crash
        result = f'crash {type(err).__name__}'
    print(json.dumps(result), flush=True)
"""


def load_under_ceiling(cases: list[tuple[str, dict]], limit: int) -> list[str]:
    """Each (spec, options) loaded by ``load_data`` in one subprocess whose address space is capped at
    ``limit`` bytes: 'ok (shape)', 'GenlabError <its message>' or 'crash <exception type>'."""
    done = subprocess.run([sys.executable, "-c", _LOADER, str(limit), json.dumps(cases)], capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    found = [json.loads(line) for line in done.stdout.splitlines()]
    return found + [f"crash exit {done.returncode}: {done.stderr[-300:]}"] * (len(cases) - len(found))


@pytest.mark.slow
def test_the_ceiling_lets_legitimate_files_load(tmp_path, footprint):
    """Positive control: under the same ceiling, well-formed npz, gzipped idx and folders load."""
    np.savez_compressed(tmp_path / "ok.npz", x=np.zeros((3000, 28, 28), np.uint8), y=np.arange(3000) % 10)
    raw = _idx_header(3000, 28, 28) + bytes(3000 * 28 * 28)
    (tmp_path / "ok-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    for i in range(4):
        _png(tmp_path / "pngs" / f"{i}.png", 1000, 1000)
    cases = [(f"npz:{tmp_path / 'ok.npz'}", {}), (f"idx:{tmp_path / 'ok-images-idx3-ubyte.gz'}", {}),
             (f"folder:{tmp_path / 'pngs'}", {})]
    assert load_under_ceiling(cases, footprint[1] + CEILING_MARGIN) == [
        "ok (3000, 1, 28, 28)", "ok (3000, 1, 28, 28)", "ok (4, 1, 1000, 1000)"]


@pytest.mark.slow
def test_big_requests_refused_before_allocating(tmp_path, footprint):
    """Sizes that would take gigabytes are refused from headers and options; run under the ceiling."""
    # a bomb beside x in the same file is never inflated: only x, y and class_names are read
    _zip64(tmp_path / "extra.npz", "other.npy", _npy_header((10**9, 10)), 10**10)
    with zipfile.ZipFile(tmp_path / "extra.npz", "a") as z:
        buf = io.BytesIO()
        np.save(buf, np.zeros((6, 4, 4), np.uint8))
        z.writestr("x.npy", buf.getvalue())
    # an idx labels file is checked from its header too
    (tmp_path / "t-images-idx3-ubyte").write_bytes(_idx_header(4, 3, 3) + bytes(36))
    _gzip(tmp_path / "t-labels-idx1-ubyte.gz", _idx_header(4, magic=0x801), 4_000_000_000)
    (tmp_path / "u-images-idx3-ubyte").write_bytes(_idx_header(4, 3, 3) + bytes(36))
    (tmp_path / "u-labels-idx1-ubyte").write_bytes(_idx_header(2**32 - 1, magic=0x801))
    np.savez(tmp_path / "y.npz", x=np.zeros((5, 4, 4), np.uint8), y=np.array([0, 1, 2**63 - 1, 2, 0], np.uint64))
    np.savez(tmp_path / "s.npz", x=np.zeros((8, 4, 4), np.uint8))
    (tmp_path / "lie.npy").write_bytes(_npy_header((10**6, 10**6)) + bytes(10))
    cases = {  # (spec, options) -> what the load gives
        (f"npz:{tmp_path / 'extra.npz'}", ()): "ok (6, 1, 4, 4)",
        (f"idx:{tmp_path / 't-images-idx3-ubyte'}", ()):
            f"GenlabError {tmp_path / 't-labels-idx1-ubyte.gz'} is longer than its header says: it promises 4 "
            f"bytes of data (12 bytes in all)",
        (f"idx:{tmp_path / 'u-images-idx3-ubyte'}", ()):
            f"GenlabError {tmp_path / 'u-images-idx3-ubyte'} has 4 images but {tmp_path / 'u-labels-idx1-ubyte'} "
            f"has 4294967295 labels",
        (f"npz:{tmp_path / 'lie.npy'}", ()):
            f"GenlabError {tmp_path / 'lie.npy'}: x's header declares shape (1000000, 1000000) uint8 "
            f"(1000.0 GB) but the file holds only 10 bytes for it",
        (f"npz:{tmp_path / 'y.npz'}", ()):
            f"GenlabError {tmp_path / 'y.npz'}: y holds the label 9223372036854775807, not below "
            f"data.max_classes=10000 (--set data.max_classes=N raises it)",
        # --set data.image_size=100000 would make images of 10**10 pixels; mnist5k at 4096 needs 335 GB
        ("mnist5k", (("image_size", 100_000),)):
            "GenlabError with image_size=100000, an image of mnist5k is 100000x100000 pixels, more than "
            "data.max_pixels=16777216 (--set data.max_pixels=N raises it)",
        ("mnist5k", (("image_size", 4096),)):
            "GenlabError mnist5k with image_size=4096: 5000 x 1 x 4096 x 4096 float32 values that take 335.5 GB, "
            "more than data.max_bytes=4294967296 (4.3 GB) (--set data.max_bytes=N raises it)",
        ("shapes", (("image_size", 4096),)):
            "GenlabError shapes with image_size=4096: 12000 x 1 x 4096 x 4096 float32 values that take 805.3 GB, "
            "more than data.max_bytes=4294967296 (4.3 GB) (--set data.max_bytes=N raises it)",
        ("toy2d:ring8", (("n", 10**9),)):
            "GenlabError toy2d:ring8 holds 1000000000 items, more than data.max_items=10000000 "
            "(--set data.max_items=N raises it)",
        (f"npz:{tmp_path / 's.npz'}", (("image_size", 5000),)):
            f"GenlabError with image_size=5000, an image of npz:{tmp_path / 's.npz'} is 5000x5000 pixels, more than "
            f"data.max_pixels=16777216 (--set data.max_pixels=N raises it)",
    }
    found = load_under_ceiling([(spec, dict(options)) for spec, options in cases], footprint[1] + CEILING_MARGIN)
    assert dict(zip(cases, found, strict=True)) == cases


@pytest.mark.slow
def test_set_data_max_reaches_the_loader(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.zeros((20, 8, 8), np.uint8))
    done, _, _ = run_cli([*train_args(f"npz:{tmp_path / 'ok.npz'}", tmp_path), "--set", "data.max_items=10"],
                         tmp_path)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"genlab: error: {tmp_path / 'ok.npz'}: x holds 20 items, more than data.max_items=10 "
        f"(--set data.max_items=N raises it)"]
    assert not (tmp_path / "runs").exists()


# --- in-process checks -----------------------------------------------------------------------------
def _one_line_error(spec: str, match: str, **options) -> None:
    with pytest.raises(GenlabError, match=match) as err:
        load_data(spec, **options)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("y,match", [
    (np.array([0, 1, np.nan, 2, 0]), "finite"), (np.array([0, 1, np.inf, 2, 0]), "finite"),
    (np.array([0, 1, -1, 2, 0]), ">= 0"), (np.array([0, 1, 1.5, 2, 0]), "whole"),
    (np.array([0, 1, 1, 2, 0], np.complex64), "dtype complex64"),
    (np.array(["a", "b", "c", "d", "e"]), "dtype <U1"),
], ids=["nan", "inf", "negative", "fraction", "complex", "strings"])
def test_labels_are_small_whole_numbers(tmp_path, y, match):
    np.savez(tmp_path / "y.npz", x=np.zeros((5, 4, 4), np.uint8), y=y)
    _one_line_error(f"npz:{tmp_path / 'y.npz'}", match)


@pytest.mark.parametrize("x,match", [
    (np.zeros((5, 3), np.complex128), "dtype complex128"), (np.zeros((5, 4, 4), np.complex64), "dtype complex64"),
    (np.array([[0.0, np.inf]] * 5), "finite"), (np.zeros((5, 0)), r"\(5, 0\).*no"),
    (np.zeros((0, 4, 4), np.uint8), r"\(0, 4, 4\)"), (np.zeros((5, 3, 0, 4), np.uint8), r"no pixels"),
], ids=["complex-points", "complex-images", "inf-points", "zero-width-points", "no-items", "zero-height"])
def test_npz_values_and_shapes(tmp_path, x, match):
    np.savez(tmp_path / "x.npz", x=x)
    _one_line_error(f"npz:{tmp_path / 'x.npz'}", match)


def test_npz_members_that_are_not_plain_arrays(tmp_path):
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as z:
        z.writestr("x", b"raw bytes, not an array")  # np.load hands back bytes for a member without .npy
    _one_line_error(f"npz:{tmp_path / 'raw.npz'}", r"x in .*raw.npz is not a .npy array")
    np.savez(tmp_path / "obj.npz", x=np.zeros((3, 2)), y=np.array([0, 1, None], dtype=object))
    _one_line_error(f"npz:{tmp_path / 'obj.npz'}", "obj.npz.*Python objects")
    np.save(tmp_path / "one.npy", np.full((4, 5, 5), 255, np.uint8))  # an .npy file is x alone
    assert load_data(f"npz:{tmp_path / 'one.npy'}").x.shape == (4, 1, 5, 5)


def test_budgets_are_overridable(tmp_path):
    _png(tmp_path / "big" / "a.png", 5000, 5000)
    spec = f"folder:{tmp_path / 'big'}"
    _one_line_error(spec, "max_pixels")
    wide = SizeBudget(max_pixels=25_000_000)
    assert load_data(spec, budget=wide, image_size=16).x.shape == (1, 1, 16, 16)
    np.savez(tmp_path / "n.npz", x=np.zeros((50, 4, 4), np.uint8), y=np.arange(50))
    _one_line_error(f"npz:{tmp_path / 'n.npz'}", "max_items=49", budget=SizeBudget(max_items=49))
    _one_line_error(f"npz:{tmp_path / 'n.npz'}", "max_classes=49", budget=SizeBudget(max_classes=49))
    _one_line_error(f"npz:{tmp_path / 'n.npz'}", "max_bytes=3199", budget=SizeBudget(max_bytes=3199))
    assert len(load_data(f"npz:{tmp_path / 'n.npz'}", budget=SizeBudget(max_bytes=3200))) == 50
    assert SizeBudget.of(DataConfig(max_side=77)).max_side == 77
    with pytest.raises(GenlabError, match="data.max_items"):
        SizeBudget(max_items=0)


def test_open_image_checks_the_header_before_decoding(tmp_path):
    _png(tmp_path / "big.png", 12000, 12000)
    with pytest.raises(GenlabError, match=r"12000x12000 .*data\.max_pixels"):
        open_image(tmp_path / "big.png")
    _png(tmp_path / "ok.png", 30, 20)
    with open_image(tmp_path / "ok.png") as img:  # lazy: decode it yourself
        assert img.size == (30, 20)
    with open(tmp_path / "ok.png", "rb") as f, open_image(io.BytesIO(f.read()), name="upload") as img:
        assert np.asarray(img).shape == (20, 30)
    with pytest.raises(GenlabError, match="cannot read the image upload"):
        open_image(io.BytesIO(b"not an image"), name="upload")


def test_legitimate_sets_pass_the_default_budget(tmp_path):
    """The defaults admit what the README shows: photos resized to a small square, full MNIST files (the
    built-in sets load with the default budget throughout test_data.py)."""
    _png(tmp_path / "photo" / "a.png", 4000, 3000)  # a 12-megapixel photo
    assert load_data(f"folder:{tmp_path / 'photo'}", image_size=64).x.shape == (1, 1, 64, 64)
    _gzip(tmp_path / "train-images-idx3-ubyte.gz", _idx_header(60000, 28, 28), 60000 * 28 * 28)
    _gzip(tmp_path / "train-labels-idx1-ubyte.gz", _idx_header(60000, magic=0x801), 60000)
    mnist = load_data(f"idx:{tmp_path / 'train-images-idx3-ubyte.gz'}")
    assert mnist.x.shape == (60000, 1, 28, 28) and mnist.num_classes == 1
