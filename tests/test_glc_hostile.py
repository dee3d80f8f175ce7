"""Hostile .glc files and images: names, header limits, payload exactness, bombs under a memory limit, fuzzing.

Every bad input gets one line (``genlab: error: ...``), exit code 2, nothing written, and no large
allocation: the bombs run in a subprocess whose address space is capped with ``resource.setrlimit``."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.compression import compress, decompress
from genlab.compression import format as glc
from genlab.config import DataInfo, RunConfig
from genlab.errors import GenlabError
from genlab.models.codec import CodecConfig
from genlab.runs import build_model, new_run
from genlab.runs.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_glc", ROOT / "benchmarks" / "fuzz_glc.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)  # the fuzzer's raw writer crafts the hostile files below


def _codec(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    config = dict(latent_dim=4, channels=(8, 8), hyper_channels=8, hyper_latent=2)
    shape = kw.pop("shape", (1, 12, 12))
    config.update(kw)
    return build_model(RunConfig(model="codec", model_config=CodecConfig(**config),
                                 data_info=DataInfo(shape=shape, kind="image"))).eval()


def _saved(model, root: Path) -> Path:
    """``model`` (untrained) as a run folder that ``genlab compress`` / ``decompress`` can load."""
    run = new_run(root, "codec", "blobs")
    run.write_config(RunConfig(model="codec", model_config=model.config, data_info=model.data_info))
    save_checkpoint(run.best, {"model": model.state_dict()})
    return run.path


@pytest.fixture(scope="module")
def codec_run(tmp_path_factory):
    """An untrained tiny hyperprior codec saved as a run folder: (model, run path)."""
    model = _codec()
    return model, _saved(model, tmp_path_factory.mktemp("runs"))


def _png(path: Path, size=(12, 12)) -> str:
    a = (np.random.default_rng(len(str(path))).random(size) * 255).astype(np.uint8)
    Image.fromarray(a).save(path)
    return str(path)


def _one_line_exit_2(args, capsys) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("genlab: error:"), err
    return err


def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def _raw(model, images, payload: bytes, **kw) -> bytes:
    """A .glc file of this model from raw fields (H, W, C, name bytes): no check on what it holds."""
    from genlab.compression import model_identity

    return fuzz.raw_glc(model_identity(model), images, payload, **kw)


# --- names: unique, safe, short enough ----------------------------------------------------------
def test_compress_refuses_inputs_that_would_decompress_to_one_file(codec_run, tmp_path, capsys):
    _, run = codec_run
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    out = tmp_path / "f.glc"
    for pair in (("x.png", "x.bmp"), ("a/x.png", "b/x.png"), ("a/Y.png", "b/y.png")):
        paths = [_png(tmp_path / p) for p in pair]
        err = _one_line_exit_2(["compress", str(run), *paths, "-o", str(out)], capsys)
        assert "rename one" in err, err
        assert not out.exists()


def test_decompress_refuses_duplicate_names_and_counts_the_files_it_writes(codec_run, tmp_path, capsys):
    model, run = codec_run
    images = [torch.rand(1, 12, 12) for _ in range(3)]
    good = tmp_path / "good.glc"
    good.write_bytes(compress(model, images, names=["a.png", "b.bmp", "c"]))
    capsys.readouterr()
    assert main(["decompress", str(good), "-o", str(tmp_path / "ok"), "--run", str(run)]) == 0
    assert "wrote 3 image(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["a.png", "b.png", "c.png"]
    parsed = glc.unpack(good.read_bytes())
    for names in ([b"x.png", b"x.bmp", b"y.png"], [b"x.png", b"X.PNG", b"y.png"], [b"z", b"z.png", b"y.png"],
                  ["\u00e9.png".encode(), "e\u0301.png".encode(), b"y.png"]):  # also one name in NFC and in NFD
        bad = tmp_path / "dup.glc"
        bad.write_bytes(_raw(model, [(h, w, c, n) for (h, w, c), n in zip(parsed.sizes, names, strict=True)],
                             parsed.payload))
        err = _one_line_exit_2(["decompress", str(bad), "-o", str(tmp_path / "dup"), "--run", str(run)], capsys)
        assert "would both be written as" in err, err
        assert not (tmp_path / "dup").exists()


HOSTILE_NAMES = {"nul": b"a\0b.png", "slash": b"a/b.png", "parent": b"../x.png", "dotdot": b"..", "root": b"/x.png",
                 "backslash": b"a\\b.png", "empty": b"", "newline": b"a\nb.png", "not-utf8": b"\xff\xfe.png",
                 "too-long": b"a" * 246 + b".png"}


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_decompress_refuses_a_hostile_name_and_writes_nothing(codec_run, tmp_path, capsys, name):
    model, run = codec_run
    parsed = glc.unpack(compress(model, [torch.rand(1, 12, 12)], names=["ok.png"]))
    work = tmp_path / "work"
    work.mkdir()
    bad = work / "bad.glc"
    bad.write_bytes(_raw(model, [(12, 12, 1, HOSTILE_NAMES[name])], parsed.payload))
    before = _files(tmp_path)
    err = _one_line_exit_2(["decompress", str(bad), "-o", str(work / "out"), "--run", str(run)], capsys)
    assert "corrupt" in err and "name" in err, err
    assert _files(tmp_path) == before  # nothing in the output folder, nothing beside or above it


def test_compress_validates_names_and_the_longest_name_round_trips(codec_run, tmp_path, capsys):
    model, run = codec_run
    long = tmp_path / ("a" * 246 + ".png")  # 250 bytes: its temporary file (+14) would not fit in NAME_MAX
    err = _one_line_exit_2(["compress", str(run), _png(long), "-o", str(tmp_path / "f.glc")], capsys)
    assert "at most 200 bytes" in err and not (tmp_path / "f.glc").exists()
    for bad in ("a\0b.png", "a/b.png", "..", "", "a" * 201):
        with pytest.raises(GenlabError, match="name"):
            compress(model, [torch.rand(1, 12, 12)], names=[bad])
    longest = tmp_path / ("é" * 98 + ".bmp")  # 200 bytes of UTF-8, written as a 200-byte .png name
    out = tmp_path / "long.glc"
    assert main(["compress", str(run), _png(longest), "-o", str(out)]) == 0
    assert main(["decompress", str(out), "-o", str(tmp_path / "dec"), "--run", str(run)]) == 0
    assert [p.name for p in (tmp_path / "dec").iterdir()] == ["é" * 98 + ".png"]


# --- header fields against the model and the format's limits; the payload consumed exactly ------------
def _cases(model) -> dict[str, bytes]:
    """Files of this model that each break one rule, with a valid CRC."""
    one = glc.unpack(compress(model, [torch.rand(1, 12, 12)], names=["a.png"]))
    words = np.frombuffer(one.payload, dtype="<u4")
    image = [(12, 12, 1, b"a.png")]
    return {
        "three channels for a grey codec": _raw(model, [(12, 12, 3, b"a.png")], one.payload),
        "two channels": _raw(model, [(12, 12, 2, b"a.png")], one.payload),
        "zero height": _raw(model, [(0, 12, 1, b"a.png")], one.payload),
        "empty payload": _raw(model, image, b""),
        "payload without images": _raw(model, [], one.payload),
        "a zero word past the end": _raw(model, image, one.payload + bytes(4)),
        "a word past the end": _raw(model, image, one.payload + b"\x01\x02\x03\x04"),
        "the last word cut": _raw(model, image, words[:-1].tobytes()) if len(words) > 1 else _raw(model, image, b""),
        "payload length lies": _raw(model, image, one.payload, payload_length=len(one.payload) + 4),
        "a payload of 2 bytes": _raw(model, image, b"\x01\x02"),
        "more images than stored": _raw(model, image, one.payload, count=2),
        "an image over the cap": _raw(model, [(2049, 2049, 1, b"a.png")], one.payload),
        "a file over the cap": _raw(model, [(2048, 2048, 1, f"{i}.png".encode()) for i in range(5)], one.payload),
        "65535 x 65535": _raw(model, [(65535, 65535, 1, b"a.png")], b"\x01\0\0\0"),
    }


@pytest.mark.parametrize("case", list(_cases(_codec())))
def test_decompress_refuses_a_header_or_payload_that_breaks_a_rule(case):
    model = _codec()
    with pytest.raises(GenlabError, match="corrupt") as err:
        decompress(model, _cases(model)[case])
    assert "\n" not in str(err.value)


def test_a_short_payload_for_many_images_is_refused_after_the_first_few(monkeypatch):
    """The re-coded stream is held against the payload image by image: a 4-byte payload claiming 2,000
    images stops being decoded as soon as the coded stream outruns it, not after all 2,000."""
    model = _codec()
    calls = []
    decode_stages = model.decode_stages
    monkeypatch.setattr(model, "decode_stages", lambda *a: calls.append(1) or decode_stages(*a))
    data = _raw(model, [(1, 1, 1, f"{i}.png".encode()) for i in range(2000)], b"\x01\0\0\0")
    with pytest.raises(GenlabError, match="corrupt"):
        decompress(model, data)
    assert 0 < len(calls) <= 10, len(calls)


def test_an_mlp_codec_refuses_a_size_other_than_its_own():
    model = _codec(shape=(1, 8, 8), arch="mlp", hidden=(16,), entropy="factorized")
    good = glc.unpack(compress(model, [torch.rand(1, 8, 8)], names=["a.png"]))
    assert decompress(model, _raw(model, [(8, 8, 1, b"a.png")], good.payload))[0][0].shape == (1, 8, 8)
    with pytest.raises(GenlabError, match="an MLP codec only codes"):
        decompress(model, _raw(model, [(8, 9, 1, b"a.png")], good.payload))
    with pytest.raises(GenlabError, match="MLP codec only codes"):
        compress(model, [torch.rand(1, 9, 8)])


def test_compress_refuses_images_over_the_caps_before_coding():
    model = _codec()
    with pytest.raises(GenlabError, match="at most 4,194,304 pixels"):
        compress(model, [torch.zeros(1, 2049, 2048)])
    from genlab.compression.codec import _batches

    sizes = [(1, 128, 128)] * 600 + [(1, 12, 12)]
    batches = _batches(sizes)
    assert batches[0] == (0, 256) and batches[-1] == (600, 601)  # 256 x 128 x 128 = MAX_IMAGE_PIXELS
    assert all(sum(sizes[a][1] * sizes[a][2] for _ in range(a, b)) <= glc.MAX_IMAGE_PIXELS for a, b in batches)


# --- bombs: a small file or image must not take the machine (subprocesses under RLIMIT_AS) -----------------
_LIMITED = """
import contextlib, io, json, resource, sys
import torch, genlab.cli, genlab.models, genlab.runs, genlab.cli.compression  # mapped before the cap
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[1]) * 2 ** 20, resource.getrlimit(resource.RLIMIT_AS)[1]))
results = []
for args in json.loads(sys.argv[2]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        results.append((genlab.cli.main(args), err.getvalue()))
print(json.dumps(results))
"""


def _limited(commands: list[list[str]], megabytes: int = 400) -> list[tuple[int, str]]:
    """(exit code, stderr) of each ``genlab ARGS``, run one after the other in one subprocess allowed
    ``megabytes`` of address space above what its imports map (so a bomb fails instead of swapping)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.run([sys.executable, "-c", _LIMITED, str(megabytes), json.dumps(commands)],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]  # a MemoryError or a crash ends the process
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _one_line_2(code: int, stderr: str) -> str:
    err = stderr.strip()
    assert code == 2, (code, err[-2000:])
    assert len(err.splitlines()) == 1 and err.startswith("genlab: error:"), err[-2000:]
    return err


def test_a_39_byte_glc_claiming_a_4096_square_image_is_refused_under_a_memory_limit(tmp_path):
    torch.manual_seed(0)
    model = build_model(RunConfig(model="codec", model_config=CodecConfig(),  # the default widths: ~3 GB to decode
                                  data_info=DataInfo(shape=(1, 28, 28), kind="image"))).eval()
    run = _saved(model, tmp_path / "runs")
    one_word = b"\x01\0\0\0"
    files = {"4096-empty": (_raw(model, [(4096, 4096, 1, b"x.png")], b""), "1 image(s) with a payload of 0 bytes"),
             "4096-one-word": (_raw(model, [(4096, 4096, 1, b"x.png")], one_word), "4096x4096 = 16,777,216 pixels"),
             "2048-empty": (_raw(model, [(2048, 2048, 1, b"x.png")], b""), "1 image(s) with a payload of 0 bytes"),
             "2048-one-word": (_raw(model, [(2048, 2048, 1, b"x.png")], one_word), "payload does not"),
             "4x2048-one-word": (_raw(model, [(2048, 2048, 1, f"{i}.png".encode()) for i in range(4)], one_word),
                                 "payload does not")}  # ... decode (the coder says so) or ... end where it should
    assert len(files["4096-empty"][0]) == 39
    for name, (data, _) in files.items():
        (tmp_path / f"{name}.glc").write_bytes(data)
    results = _limited([["decompress", str(tmp_path / f"{name}.glc"), "-o", str(tmp_path / name), "--run", str(run)]
                        for name in files])
    for (name, (_, reason)), (code, stderr) in zip(files.items(), results, strict=True):
        err = _one_line_2(code, stderr)
        assert "corrupt" in err and reason in err and "allocate" not in err, (name, err)  # not a failed allocation
        assert not (tmp_path / name).exists(), name


def _blank_png(path: Path, side: int) -> Path:
    """A valid 1-bit grey PNG of side x side pixels, deflated row by row: a few hundred KB at most."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row = zlib.compressobj(9), bytes(1 + (side + 7) // 8)  # filter byte + packed bits
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.slow
def test_compress_refuses_a_huge_png_from_its_header(codec_run, tmp_path):
    """30000^2: Pillow raises DecompressionBombError; 12000^2: Pillow only warns; 2049^2: under Pillow's limit."""
    _, run = codec_run
    sides = (30000, 12000, 2049)
    pngs = [_blank_png(tmp_path / f"big{side}.png", side) for side in sides]
    results = _limited([["compress", str(run), str(png), "-o", str(tmp_path / "big.glc")] for png in pngs])
    for png, (code, stderr) in zip(pngs, results, strict=True):
        err = _one_line_2(code, stderr)
        assert "4,194,304 pixels" in err and str(png) in err, err
    assert not (tmp_path / "big.glc").exists()


# --- writing: all or nothing -----------------------------------------------------------------------------
def test_decompress_removes_what_it_wrote_when_a_write_fails(codec_run, tmp_path, capsys, monkeypatch):
    model, run = codec_run
    path = tmp_path / "three.glc"
    path.write_bytes(compress(model, [torch.rand(1, 12, 12) for _ in range(3)], names=["a.png", "b.png", "c.png"]))
    import genlab.compression.files as checkpoint  # where decompress writes from

    real, calls = checkpoint.atomic_write_bytes, []

    def failing_second(target, payload):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(target, payload)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", failing_second)
    err = _one_line_exit_2(["decompress", str(path), "-o", str(tmp_path / "out"), "--run", str(run)], capsys)
    assert "No space left on device" in err
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(checkpoint, "atomic_write_bytes", real)
    (tmp_path / "out2" / "b.png").mkdir(parents=True)  # a folder where an image would go
    err = _one_line_exit_2(["decompress", str(path), "-o", str(tmp_path / "out2"), "--run", str(run)], capsys)
    assert "is a folder" in err and sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["b.png"]


# --- fuzzing: the seeded harness of benchmarks/fuzz_glc.py, a few thousand cases -----------------------------
@pytest.mark.slow
def test_fuzzed_glc_files_decode_or_get_one_line_under_a_memory_limit(tmp_path):
    result_file = tmp_path / "fuzz.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz_glc.py"), "--cases", "3000", "--seed", "20",
                           "--memory-mb", "1024", "--json", str(result_file)], capture_output=True, text=True, env=env,
                          timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(result_file.read_text())
    assert result["failures"] == []
    counts = result["counts"]
    assert set(counts) == set(fuzz.MUTATORS)  # every kind of case was drawn
    decoded = sum(c.get("decoded", 0) for c in counts.values())
    refused = sum(c.get("refused", 0) for c in counts.values())
    assert decoded + refused == 3000 and decoded >= 100 and refused >= 1500, counts
    assert counts["bomb"].get("decoded", 0) == 0, counts  # (a changed payload can be another valid stream)
