"""Fuzzing ``.glc`` decoding: mutated and crafted files with the length and CRC recomputed.

    python benchmarks/fuzz_glc.py --cases 100000 --json benchmarks/results/fuzz_glc.json \\
        | tee benchmarks/results/fuzz_glc.txt
    python benchmarks/fuzz_glc.py --atheris --runs 100000      # coverage-guided (pip install atheris)

Seeds are real files written by four tiny untrained codecs (conv hyperprior, conv factorized, RGB conv,
MLP). Case ``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])`` (so any case can be
replayed with ``--replay I``): byte-level mutations (bit flips, interesting bytes, insertions and
deletions), a changed payload (cut, padded, random, empty), and crafted headers (image counts, sizes,
channel counts and names from lists of edge values: zero, one, the stride and its neighbours, the
format's caps and 65535; NUL, separators, ``..``, over-long and invalid UTF-8 names, duplicates up to
case and Unicode normalisation). The CRC, and usually the length field, are recomputed, so every case
reaches the checks past the CRC. Each case is decoded in this process with
``genlab.compression.decompress`` under an address-space limit (``--memory-mb`` above what the process
holds once the codecs are built, set with ``resource.setrlimit(RLIMIT_AS)``).

The oracle: a case either decodes to images whose shapes match its header, with values in [0, 1] and
names that are safe and unique file names, or raises ``GenlabError`` with one non-empty line. Anything
else (another exception, a ``MemoryError`` under the limit) is a failure; the script lists failures
and exits 1 if there is one. ``tests/test_glc_hostile.py`` runs it with a few thousand cases.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import struct
import sys
import time
import unicodedata
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from genlab.compression import compress, decompress
from genlab.compression import format as glc
from genlab.config import DataInfo, RunConfig
from genlab.errors import GenlabError
from genlab.models import build_model
from genlab.models.codec import CodecConfig

# --- the files: seeds written by tiny codecs, and a raw writer that checks nothing ----------------


def codecs() -> dict[str, torch.nn.Module]:
    """Four tiny untrained codecs, one per decoding path (weights from a fixed seed)."""
    specs = {
        "hyper": ((1, 12, 12), CodecConfig(latent_dim=4, channels=(8, 8), entropy="hyperprior", hyper_channels=8,
                                            hyper_latent=2)),
        "factorized": ((1, 12, 12), CodecConfig(latent_dim=4, channels=(8, 8), entropy="factorized")),
        "rgb": ((3, 12, 12), CodecConfig(latent_dim=3, channels=(8,), entropy="factorized")),
        "mlp": ((1, 8, 8), CodecConfig(latent_dim=6, arch="mlp", hidden=(16,))),
    }
    out = {}
    for key, (shape, config) in specs.items():
        torch.manual_seed(0)
        out[key] = build_model(RunConfig(model="codec", model_config=config,
                                         data_info=DataInfo(shape=shape, kind="image"))).eval()
    return out


def seed_files(models: dict) -> list[tuple[str, bytes]]:
    """(codec key, file bytes) of real files: one image, several sizes, odd names."""
    g = torch.Generator().manual_seed(0)
    out = []
    for key, model in models.items():
        c, h, w = model.data_info.shape
        sizes = [(h, w)] * 3 if key == "mlp" else [(h, w), (h, w), (5, 17), (1, 1), (13, 9)]
        images = [torch.rand(c, a, b, generator=g) for a, b in sizes]
        out.append((key, compress(model, images[:1], names=["one.png"])))
        out.append((key, compress(model, images, names=[f"im{i}.bmp" for i in range(len(images))])))
        out.append((key, compress(model, images[-2:], names=["é.png", "x y.jpeg"])))
    return out


def raw_glc(model_id: bytes, images: list[tuple[int, int, int, bytes]], payload: bytes, *, quality: int = 0,
            count: int | None = None, payload_length: int | None = None, version: int = glc.FORMAT_VERSION) -> bytes:
    """A .glc file from raw fields (H, W, C, name bytes) with the length and CRC filled in and nothing checked:
    the writer of hostile files."""
    body = struct.pack(">8sBH", model_id, quality, len(images) if count is None else count)
    for h, w, c, name in images:
        body += struct.pack(">HHBB", h, w, c, len(name) & 0xFF) + name
    body += struct.pack(">I", len(payload) if payload_length is None else payload_length) + payload
    return fix_envelope(glc.MAGIC + bytes([version]) + b"\0\0\0\0" + body + b"\0\0\0\0")


def fix_envelope(data: bytes, *, length: bool = True) -> bytes:
    """``data`` with its total-length field (when ``length``) and its CRC recomputed."""
    data = bytearray(data)
    if len(data) < 13:
        return bytes(data)
    if length:
        data[5:9] = struct.pack(">I", len(data))
    data[-4:] = struct.pack(">I", zlib.crc32(bytes(data[:-4])))
    return bytes(data)


# --- cases --------------------------------------------------------------------------------------
SIDES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33, 64, 255, 256, 1023, 1024, 2047, 2048, 2049, 4096,
         32768, 65535]
CHANNELS = [0, 1, 2, 3, 4, 255]
NAMES = [b"", b"\0", b"a\0b.png", b"../x.png", b"/etc/passwd", b"a/b.png", b"a\\b.png", b"..", b".", b"x" * 255,
         b"x" * 201, b"x" * 200, b"\xff\xfe.png", b"\xc3", b"line\nbreak.png", b"tab\t.png", b"\x7f.png", b"x.png",
         b"X.PNG", b"x.bmp", b"x", b".png", b".hidden", "é.png".encode(),
         unicodedata.normalize("NFD", "é.png").encode(), "\u202eevil.png".encode(), b"con", b"x.", b"a" * 196 + b".bmp"]
INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x7F, 0x80, 0xFE, 0xFF]


def _side(rng) -> int:
    return int(rng.integers(1, 40)) if rng.random() < 0.8 else int(rng.choice(SIDES))


def _fields(data: bytes) -> glc.GlcFile:
    return glc.unpack(data)


def _images(parsed: glc.GlcFile) -> list[tuple[int, int, int, bytes]]:
    return [(h, w, c, n.encode()) for (h, w, c), n in zip(parsed.sizes, parsed.names, strict=True)]


def mutate_bytes(rng, data: bytes, parsed, model) -> bytes:
    """Bit flips, interesting bytes, inserted or deleted runs anywhere past the magic; length and CRC fixed."""
    out = bytearray(data[:-4])
    for _ in range(int(rng.integers(1, 5))):
        op, at = rng.integers(0, 4), int(rng.integers(4, len(out)))
        if op == 0:
            out[at] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:
            out[at] = int(rng.choice(INTERESTING))
        elif op == 2:
            out[at:at] = rng.integers(0, 256, int(rng.integers(1, 9))).astype(np.uint8).tobytes()
        else:
            del out[at:at + int(rng.integers(1, 9))]
    return fix_envelope(bytes(out) + b"\0\0\0\0", length=rng.random() < 0.8)


def mutate_payload(rng, data: bytes, parsed, model) -> bytes:
    """The header kept, the payload cut, padded, replaced or emptied (its length field matching)."""
    words = np.frombuffer(parsed.payload, dtype="<u4")
    op = int(rng.integers(0, 6))
    if op == 0:
        words = words[:int(rng.integers(0, len(words)))]
    elif op == 1:
        words = np.concatenate([words, np.zeros(int(rng.integers(1, 4)), dtype="<u4")])
    elif op == 2:
        words = np.concatenate([words, rng.integers(0, 2 ** 32, int(rng.integers(1, 4)), dtype=np.uint32)])
    elif op == 3:
        words = rng.integers(0, 2 ** 32, int(rng.integers(0, 2 * len(words) + 2)), dtype=np.uint32)
    elif op == 4:
        words = np.full(int(rng.integers(1, 2 * len(words) + 2)), rng.choice([0, 0xFFFFFFFF]), dtype=np.uint32)
    else:
        words = words.copy()
        words[int(rng.integers(0, len(words)))] ^= np.uint32(1 << int(rng.integers(0, 32)))
    payload = words.astype("<u4").tobytes()
    if rng.random() < 0.1:
        payload += bytes(int(rng.integers(1, 4)))  # not a whole word
    return raw_glc(parsed.model_id, _images(parsed), payload, quality=parsed.quality)


def craft_header(rng, data: bytes, parsed, model) -> bytes:
    """The seed's payload under a header with edge values: counts, sizes, channels, names, payload length."""
    images = _images(parsed)
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(0, 7))
        i = int(rng.integers(0, len(images))) if images else 0
        if op == 0 and images:
            h, w, c, n = images[i]
            images[i] = (_side(rng), _side(rng), c, n) if rng.random() < 0.5 else (
                (_side(rng), w, c, n) if rng.random() < 0.5 else (h, _side(rng), c, n))
        elif op == 1 and images:
            h, w, _, n = images[i]
            images[i] = (h, w, int(rng.choice(CHANNELS)), n)
        elif op == 2 and images:
            h, w, c, _ = images[i]
            images[i] = (h, w, c, NAMES[int(rng.integers(0, len(NAMES)))])
        elif op == 3:
            images = images + [images[i] if images else (8, 8, 1, b"a.png")] * int(rng.integers(1, 4))
        elif op == 4:
            images = images[:int(rng.integers(0, len(images) + 1))]
        elif op == 5:
            big = int(rng.choice([2048, 2049, 4096, 65535]))
            images = [(big, big, c, n) for _, _, c, n in images] or [(big, big, 1, b"big.png")]
        else:
            images = images * int(rng.integers(2, 6))
    count = int(rng.choice([0, 1, 2, 65535])) if rng.random() < 0.1 else None
    length = int(rng.integers(0, 2 ** 32)) if rng.random() < 0.05 else None
    return raw_glc(parsed.model_id, images, parsed.payload, quality=parsed.quality, count=count,
                   payload_length=length)


def craft_valid(rng, data: bytes, parsed, model) -> bytes:
    """A real encoding of random images of edge sizes, then (half the time) one name or size changed."""
    c, h, w = model.data_info.shape
    n = int(rng.integers(1, 4))
    sizes = [(h, w)] * n if not model.conv else [(int(rng.choice([1, 2, 3, 4, 5, 17, 33])),
                                                   int(rng.choice([1, 2, 3, 4, 5, 17, 33]))) for _ in range(n)]
    g = torch.Generator().manual_seed(int(rng.integers(0, 2 ** 31)))
    images = [torch.rand(c, a, b, generator=g) for a, b in sizes]
    valid = glc.unpack(compress(model, images, names=[f"v{i}.png" for i in range(n)]))
    fields = _images(valid)
    if rng.random() < 0.5:
        i = int(rng.integers(0, n))
        a, b, ch, name = fields[i]
        fields[i] = (a, b, ch, NAMES[int(rng.integers(0, len(NAMES)))]) if rng.random() < 0.5 else (
            a + int(rng.choice([-1, 1, 4])), b, ch, name)
    return raw_glc(valid.model_id, fields, valid.payload, quality=valid.quality)


def bomb(rng, data: bytes, parsed, model) -> bytes:
    """A tiny file that claims big images: no payload, one word, or the seed's payload."""
    side = int(rng.choice([512, 1024, 2048, 2049, 4096, 65535]))
    count = int(rng.choice([1, 2, 4, 5, 17]))
    payload = [b"", b"\x01\0\0\0", parsed.payload][int(rng.integers(0, 3))]
    c = model.data_info.shape[0]
    return raw_glc(parsed.model_id, [(side, side, c, f"b{i}.png".encode()) for i in range(count)], payload)


def unchanged(rng, data: bytes, parsed, model) -> bytes:
    return data


MUTATORS = {"bytes": mutate_bytes, "payload": mutate_payload, "header": craft_header, "valid": craft_valid,
            "bomb": bomb, "seed": unchanged}
WEIGHTS = {"bytes": 0.3, "payload": 0.25, "header": 0.25, "valid": 0.1, "bomb": 0.05, "seed": 0.05}


def make_case(seed: int, index: int, models: dict, seeds: list) -> tuple[str, str, bytes]:
    """(mutator, codec key, file bytes) of case ``index``: the same for the same (seed, index)."""
    rng = np.random.default_rng([seed, index])
    kind = str(rng.choice(list(WEIGHTS), p=list(WEIGHTS.values())))
    key, data = seeds[int(rng.integers(0, len(seeds)))]
    return kind, key, MUTATORS[kind](rng, data, glc.unpack(data), models[key])


# --- the oracle ---------------------------------------------------------------------------------
class OracleFailure(Exception):
    """A case that neither decoded to valid images nor raised a one-line GenlabError."""


def safe_file_name(name: str) -> bool:
    """The oracle's own test of a name to write in a folder: one path component, no control characters,
    valid UTF-8, and short enough that the temporary file of an atomic write (name + 14) fits NAME_MAX."""
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return (0 < len(raw) <= 255 - 14 and name not in (".", "..") and "/" not in name and "\\" not in name
            and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name))


def check(model, data: bytes) -> tuple[str, str]:
    """("decoded", "") or ("refused", the one-line message); OracleFailure for anything else."""
    try:
        images, names = decompress(model, data)
    except GenlabError as err:
        message = str(err)
        if not message or "\n" in message:
            raise OracleFailure(f"GenlabError without one line: {message!r}") from None
        return "refused", message
    except Exception as err:  # noqa: BLE001  (the oracle's point: no other exception may escape)
        raise OracleFailure(f"{type(err).__name__}: {' '.join(str(err).split())[:300]}") from None
    parsed = glc.unpack(data)
    if len(images) != len(parsed.sizes) or names != parsed.names:
        raise OracleFailure(f"{len(images)} images for a header of {len(parsed.sizes)}")
    written = set()
    for x, (h, w, c), name in zip(images, parsed.sizes, names, strict=True):
        if tuple(x.shape) != (c, h, w) or not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise OracleFailure(f"image {name!r}: shape {tuple(x.shape)} for ({c}, {h}, {w}) or values outside [0, 1]")
        out = glc.png_name(name)  # what `genlab decompress` writes
        if not safe_file_name(out):
            raise OracleFailure(f"unsafe name {name!r} accepted")
        key = unicodedata.normalize("NFC", out).casefold()
        if key in written:
            raise OracleFailure(f"two images written as {out!r}")
        written.add(key)
    return "decoded", ""


# --- running --------------------------------------------------------------------------------------
def limit_memory(mb: int) -> int:
    """Caps this process's address space at what it maps now plus ``mb`` MiB; returns the cap in bytes."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    cap = vm + mb * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return cap


def fuzz(cases: int, seed: int, models: dict, seeds: list, *, start: int = 0) -> dict:
    counts: dict[str, Counter] = defaultdict(Counter)
    cpu: Counter = Counter()
    messages: Counter = Counter()
    failures = []
    for index in range(start, start + cases):
        kind, key, data = make_case(seed, index, models, seeds)
        t = time.process_time()
        try:
            outcome, message = check(models[key], data)
        except OracleFailure as err:
            outcome = "failed"
            failures.append({"case": index, "kind": kind, "codec": key, "error": str(err), "bytes": len(data),
                             "head_hex": data[:96].hex()})
        except MemoryError:
            outcome = "failed"
            failures.append({"case": index, "kind": kind, "codec": key, "error": "MemoryError", "bytes": len(data)})
        cpu[kind] += time.process_time() - t
        counts[kind][outcome] += 1
        if outcome == "refused":  # the first words of the message say which check refused it
            messages[" ".join(message.replace("file is corrupt", "").strip(" (:").split()[:5])] += 1
    return {"counts": {k: dict(v) for k, v in counts.items()}, "cpu_seconds": dict(cpu), "failures": failures,
            "top_refusals": messages.most_common(12)}


def table(result: dict) -> str:
    lines = [f"{'mutator':<10}{'cases':>8}{'decoded':>9}{'refused':>9}{'failed':>8}{'CPU s':>8}"]
    total = Counter()
    for kind in MUTATORS:
        c = Counter(result["counts"].get(kind, {}))
        n = sum(c.values())
        total.update(c)
        lines.append(f"{kind:<10}{n:>8}{c['decoded']:>9}{c['refused']:>9}{c['failed']:>8}"
                     f"{result['cpu_seconds'].get(kind, 0.0):>8.1f}")
    lines.append(f"{'all':<10}{sum(total.values()):>8}{total['decoded']:>9}{total['refused']:>9}{total['failed']:>8}"
                 f"{sum(result['cpu_seconds'].values()):>8.1f}")
    return "\n".join(lines)


def run_atheris(runs: int, models: dict, seeds: list, corpus: Path) -> None:
    """Coverage-guided: libFuzzer mutates bytes, the harness recomputes length and CRC, then the oracle."""
    import atheris

    corpus.mkdir(parents=True, exist_ok=True)
    for i, (key, data) in enumerate(seeds):
        (corpus / f"seed{i}-{key}.glc").write_bytes(data)
    import inspect

    import genlab.compression.codec as codec
    from genlab.models.codec import Codec

    ids = {bytes(glc.unpack(data).model_id): key for key, data in seeds}
    for module in (glc, codec):  # coverage of the format's and the decoder's Python code (not torch's)
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__:
                atheris.instrument_func(fn)
    atheris.instrument_func(Codec.decode_stages)

    def one_input(data: bytes) -> None:
        data = fix_envelope(data)  # so that mutations reach the checks past the CRC
        check(models[ids.get(bytes(data[9:17]), "hyper")], data)  # the codec the file names, if any

    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=4096", "-seed=1", str(corpus)], one_input)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-mb", type=int, default=1024, help="address space allowed above the start (MiB)")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--replay", type=int, default=None, help="run only this case and show its outcome")
    parser.add_argument("--atheris", action="store_true", help="coverage-guided with atheris instead")
    parser.add_argument("--runs", type=int, default=100_000, help="--atheris: inputs to try")
    parser.add_argument("--corpus", default="/tmp/fuzz_glc_corpus", help="--atheris: corpus folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = codecs()
    seeds = seed_files(models)
    for key, data in seeds:  # every seed decodes: the oracle's positive control
        assert check(models[key], data)[0] == "decoded", key
    cap = limit_memory(args.memory_mb)
    if args.atheris:
        run_atheris(args.runs, models, seeds, Path(args.corpus))
        return 0
    if args.replay is not None:
        kind, key, data = make_case(args.seed, args.replay, models, seeds)
        print(kind, key, len(data), data[:96].hex())
        print(*check(models[key], data))
        return 0
    t0, c0 = time.perf_counter(), time.process_time()
    result = fuzz(args.cases, args.seed, models, seeds)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.update({"cases": args.cases, "seed": args.seed, "seeds": len(seeds), "address_space_cap_mb": cap / 2 ** 20,
                   "memory_mb_above_start": args.memory_mb, "peak_rss_mb": peak, "wall_seconds": wall,
                   "cpu_seconds_total": cpu, "cpu": platform.processor() or platform.machine(),
                   "caps": {"max_image_pixels": glc.MAX_IMAGE_PIXELS, "max_file_pixels": glc.MAX_FILE_PIXELS,
                            "max_file_bytes": glc.MAX_FILE_BYTES, "max_name_bytes": glc.MAX_NAME_BYTES}})
    print(table(result))
    print(f"{args.cases} cases (seed {args.seed}) in {wall:.1f} s wall, {cpu:.1f} s CPU; peak RSS {peak:.0f} MB "
          f"under an address-space cap of {cap / 2 ** 20:.0f} MB; {len(result['failures'])} failure(s)")
    print("most frequent refusals: " + "; ".join(f"{m} ({n})" for m, n in result["top_refusals"][:6]))
    for failure in result["failures"][:20]:
        print(f"FAILED case {failure['case']} ({failure['kind']}, {failure['codec']}): {failure['error']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
