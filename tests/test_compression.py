"""The learned codec as real files: exact round trips, format errors, rate honesty, RD direction."""

from __future__ import annotations

import io
import json
import math
import zlib

import constriction
import numpy as np
import pytest
import torch
from PIL import Image

from genlab.api.training import make_trainer
from genlab.cli import main
from genlab.compression import compress, decompress, model_identity, rate_check
from genlab.compression import format as glc
from genlab.compression.rd import bd_rate, jpeg_entropy_coded_bytes
from genlab.config import DataInfo, RunConfig, TrainConfig, from_dict, lasting_dict, to_dict
from genlab.errors import GenlabError
from genlab.models import build_model
from genlab.models.codec import CodecConfig
from genlab.models.entropy import quantize_pmf
from genlab.runs import new_run, read_run_config

from conftest import blobs, info


def _train(data, lmbda: float, steps: int, tmp_path, seed: int = 0):
    cfg = RunConfig(model="codec", data_info=info(data),
                    model_config=CodecConfig(latent_dim=4, channels=(8, 8), lmbda=lmbda),
                    train=TrainConfig(steps=steps, batch_size=32, lr=3e-3, seed=seed, eval_every=0,
                                      sample_every=0, checkpoint_every=0, eval_metrics=("recon_mse",)))
    model = build_model(cfg)
    run = new_run(tmp_path, "codec", data.name)
    run.write_config(cfg)
    make_trainer(model, data, run, cfg.train, progress=False).fit()
    return model.eval(), run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = blobs(240, size=12)
    model, run = _train(data, 0.01, 150, tmp_path_factory.mktemp("runs"))
    return data, model, run


@pytest.mark.slow
def test_round_trip_is_bit_exact(trained):
    data, model, _ = trained
    x = data.x[:20]
    images, names = decompress(model, compress(model, list(x)))
    assert torch.equal(torch.stack(images), model.reconstruct(x))
    assert names == [f"image{i:04d}" for i in range(20)]


def test_any_size_and_rgb(trained):
    data, model, _ = trained
    odd = [torch.rand(1, 13, 9), torch.rand(1, 13, 9), torch.rand(1, 5, 17)]
    images, _ = decompress(model, compress(model, odd))
    assert [tuple(x.shape) for x in images] == [tuple(x.shape) for x in odd]
    assert torch.equal(torch.stack(images[:2]), model.reconstruct(torch.stack(odd[:2])))
    rgb = build_model(RunConfig(model="codec", model_config=CodecConfig(latent_dim=3, channels=(8,)),
                                data_info=DataInfo(shape=(3, 12, 12), kind="image"))).eval()
    x = torch.rand(2, 3, 10, 14)
    assert torch.equal(torch.stack(decompress(rgb, compress(rgb, list(x)))[0]), rgb.reconstruct(x))


def _errors(model, data: bytes) -> str:
    with pytest.raises(GenlabError) as err:
        decompress(model, data)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_format_errors(trained):
    data, model, _ = trained
    good = compress(model, list(data.x[:4]))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    assert "CRC" in _errors(model, bytes(flipped))
    assert "truncated" in _errors(model, good[:-7])
    assert "not a .glc" in _errors(model, b"\x89PNG\r\n\x1a\n" + good[8:])
    body = bytearray(good[:-4])
    body[4] = 9  # a future version, with a valid CRC
    assert "version 9" in _errors(model, bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "big"))
    other = build_model(RunConfig(model="codec", model_config=model.config, data_info=model.data_info,
                                  train=TrainConfig(seed=1))).eval()
    assert model_identity(other) != model_identity(model)
    assert "made by model" in _errors(other, good)


def test_runs_saved_before_the_layout_options_existed_keep_their_layout_and_their_files_identity(tmp_path):
    """model.rate_levels, last_stage and decoder_input came after codec runs and .glc files had been made: a
    config.json without them reads as the layout of that time (not today's default), and the config part of the
    codec's identity (in every .glc header) is the dict the code of that time hashed."""
    old = CodecConfig(latent_dim=4, channels=(8, 8), last_stage="gdn_conv3")
    later = ("rate_levels", "last_stage", "decoder_input")
    saved_then = {k: v for k, v in to_dict(old).items() if k not in later}
    assert from_dict(CodecConfig, saved_then) == old
    assert lasting_dict(old) == saved_then
    new = CodecConfig(latent_dim=4, channels=(8, 8))
    assert new.last_stage == "latent" and lasting_dict(new) == {**saved_then, "last_stage": "latent"}

    run = new_run(tmp_path, "codec", "old")
    run.write_config(RunConfig(model="codec", model_config=new, data_info=DataInfo(shape=(1, 16, 16),
                                                                                    kind="image")))
    raw = json.loads(run.config_file.read_text())
    for name in later:
        del raw["model_config"][name]
    run.config_file.write_text(json.dumps(raw))
    model = build_model(read_run_config(run.config_file))
    assert model.config == old
    assert [m.kernel_size for m in model.g_a if isinstance(m, torch.nn.Conv2d)][-1] == (3, 3)
    assert model_identity(model) == model_identity(build_model(RunConfig(
        model="codec", model_config=old, data_info=model.data_info)))


def test_cli_round_trip_and_one_line_errors(trained, tmp_path, capsys):
    data, model, run = trained
    from genlab.runs.checkpoint import save_checkpoint

    save_checkpoint(run.best, {"model": model.state_dict()})
    pngs = []
    for i in range(3):
        p = tmp_path / f"d{i}.png"
        Image.fromarray((data.x[i, 0] * 255).round().byte().numpy()).convert("RGB").save(p)  # RGB: converted
        pngs.append(str(p))
    out = tmp_path / "x.glc"
    assert main(["compress", str(run.path), *pngs, "-o", str(out)]) == 0
    assert main(["decompress", str(out), "-o", str(tmp_path / "dec"), "--run", str(run.path)]) == 0
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == ["d0.png", "d1.png", "d2.png"]
    capsys.readouterr()
    bad = tmp_path / "bad.glc"
    cases = {"no-run": (out.read_bytes(), []), "crc": (out.read_bytes()[:-1] + b"\x00", ["--run", str(run.path)]),
             "short": (out.read_bytes()[:30], ["--run", str(run.path)])}
    for name, (payload, extra) in cases.items():
        bad.write_bytes(payload)
        target = tmp_path / f"out-{name}"
        assert main(["decompress", str(bad), "-o", str(target), *extra]) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("genlab: error:"), err
        assert not target.exists(), name
    bad.write_bytes(out.read_bytes())
    assert main(["decompress", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "pass --run RUN_FOLDER" in capsys.readouterr().err


def test_range_coder_payload_near_entropy():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])
    symbols = rng.choice(len(p), size=20000, p=p).astype(np.int32)
    q = quantize_pmf(p)
    assert q.sum() == 1 << 16 and (q >= 1).all()
    model = constriction.stream.model.Categorical(q / (1 << 16), perfect=False)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(symbols, model)
    bits = 32 * len(enc.get_compressed())
    information = -np.log2(p[symbols]).sum()  # the ideal code length of this very sequence
    assert information <= bits <= information + 64 + 1e-4 * information
    dec = constriction.stream.queue.RangeDecoder(enc.get_compressed())
    assert (dec.decode(model, len(symbols)) == symbols).all()


def test_payload_matches_estimated_rate(trained):
    data, model, _ = trained
    check = rate_check(model, list(data.x[:100]))
    assert check["ok"], check
    assert check["payload_bits"] >= 0.98 * check["estimated_bits"]  # no free bits either


@pytest.mark.slow
def test_lambda_moves_rate_and_distortion(tmp_path):
    data = blobs(240, size=12)
    x = data.x[data.splits["test"]]
    points = []
    for lmbda in (0.0005, 0.05):
        model, _ = _train(data, lmbda, 150, tmp_path)
        bits = 8 * len(glc.unpack(compress(model, list(x))).payload) / (len(x) * 144)
        mse = float((model.reconstruct(x) - x).pow(2).mean())
        points.append((bits, -10 * math.log10(mse)))
    (r_lo, p_lo), (r_hi, p_hi) = points
    assert r_hi > r_lo and p_hi > p_lo, points


def test_jpeg_entropy_coded_segment():
    a = (np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="JPEG", quality=50, optimize=True)
    data = buffer.getvalue()
    ecs = jpeg_entropy_coded_bytes(data)
    sos = data.index(b"\xff\xda")
    header = int.from_bytes(data[sos + 2:sos + 4], "big")
    assert ecs == len(data) - (sos + 2 + header) - 2  # everything between the SOS header and EOI
    assert data.endswith(b"\xff\xd9") and 0 < ecs < len(data) - 100


def test_bd_rate_of_half_the_bits():
    anchor = [{"bpp": b, "psnr": p} for b, p in ((0.5, 20), (1.0, 25), (2.0, 30))]
    half = [{"bpp": d["bpp"] / 2, "psnr": d["psnr"]} for d in anchor]
    assert bd_rate(half, anchor) == pytest.approx(-50.0)


def test_parse_qualities_and_lambda_ladder():
    from genlab.compression.ladder import LMBDA, lmbda_for, parse_qualities

    assert parse_qualities("1..6") == [1, 2, 3, 4, 5, 6]
    assert parse_qualities("2-4, 6") == [2, 3, 4, 6] and parse_qualities("3") == [3]
    for bad in ("6..1", "a", "1..99"):
        with pytest.raises(GenlabError):
            parse_qualities(bad)
    lambdas = [lmbda_for(q) for q in range(0, 11)]
    assert all(a < b for a, b in zip(lambdas[:-1], lambdas[1:], strict=True))  # more weight on distortion
    assert lmbda_for(3) == LMBDA[3] and lmbda_for(9) == 2 * LMBDA[8]


@pytest.mark.slow
def test_ladder_trains_each_quality_and_codes_by_quality(tmp_path, capsys):
    from genlab.compression.ladder import lmbda_for, read_ladder
    from genlab.runs import open_run

    data = blobs(120, size=12)
    npz = tmp_path / "blobs.npz"
    np.savez(npz, x=data.x.numpy(), y=data.y.numpy())
    args = ["train", "codec", "--data", f"npz:{npz}", "--qualities", "1,4", "--steps", "20", "--no-final",
            "--runs", str(tmp_path / "runs"), "--set", "model.channels=[8,8]", "--set", "model.latent_dim=4",
            "--set", "train.eval_every=0", "--set", "train.sample_every=0", "--set", "train.threads=1"]
    assert main(args) == 0
    (ladder,) = (tmp_path / "runs").iterdir()
    runs = read_ladder(ladder)
    assert sorted(runs) == [1, 4]
    for q, path in runs.items():
        cfg = open_run(path).read_config().model_config
        assert (cfg.quality, cfg.lmbda) == (q, lmbda_for(q))
    png = tmp_path / "a.png"
    Image.fromarray((data.x[0, 0] * 255).round().byte().numpy()).save(png)
    out = tmp_path / "a.glc"
    assert main(["compress", str(ladder), str(png), "-o", str(out), "-q", "4"]) == 0
    assert glc.unpack(out.read_bytes()).quality == 4
    assert main(["decompress", str(out), "-o", str(tmp_path / "dec"), "--run", str(ladder)]) == 0
    assert (tmp_path / "dec" / "a.png").is_file()
    capsys.readouterr()
    assert main(["compress", str(ladder), str(png), "-o", str(out), "-q", "2"]) == 2
    assert "has no quality 2; it has 1, 4" in capsys.readouterr().err
    assert main([*args, "--set", "lmbda=0.5"]) == 2
    assert "drop --set lmbda" in capsys.readouterr().err


def _train_hyper(data, lmbda: float, steps: int, tmp_path):
    cfg = RunConfig(model="codec", data_info=info(data),
                    model_config=CodecConfig(latent_dim=4, channels=(8, 8), lmbda=lmbda, entropy="hyperprior",
                                             hyper_channels=8, hyper_latent=2),
                    train=TrainConfig(steps=steps, batch_size=32, lr=3e-3, eval_every=0, sample_every=0,
                                      checkpoint_every=0, eval_metrics=()))
    model = build_model(cfg)
    run = new_run(tmp_path, "codec", data.name)
    run.write_config(cfg)
    make_trainer(model, data, run, cfg.train, progress=False).fit()
    return model.eval()


@pytest.mark.slow
def test_hyperprior_round_trip_rate_and_sizes(tmp_path):
    data = blobs(240, size=12)
    model = _train_hyper(data, 0.01, 120, tmp_path)
    x = data.x[:24]
    images, _ = decompress(model, compress(model, list(x)))
    assert torch.equal(torch.stack(images), model.reconstruct(x))  # scales snap to the same tables
    odd = [torch.rand(1, 13, 9), torch.rand(1, 5, 17)]
    assert [tuple(i.shape) for i in decompress(model, compress(model, odd))[0]] == [(1, 13, 9), (1, 5, 17)]
    check = rate_check(model, list(data.x[:100]))
    assert check["ok"] and check["payload_bits"] >= 0.98 * check["estimated_bits"], check
    samples = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 1, 12, 12) and 0 <= samples.min() and samples.max() <= 1


@pytest.mark.slow
def test_hyperprior_spends_fewer_bits_on_a_blank_image(tmp_path):
    """Side information pays off where the image is flat: a blank image costs little."""
    data = blobs(240, size=12)
    model = _train_hyper(data, 0.01, 150, tmp_path)
    bits = model.estimated_bits(torch.stack([torch.zeros(1, 12, 12), data.x[0]]))
    assert bits[0] < bits[1]


def test_a_channel_that_always_says_zero_still_codes():
    from genlab.models.entropy import tables_from_cdfs

    grid = np.arange(-4, 5) + 0.5  # CDF at the half-integers of values -4..4
    point_mass = (grid > 0).astype(np.float64)  # all mass on 0
    lo, pmf = tables_from_cdfs(np.concatenate([[0.0], point_mass])[None])
    row = pmf[0][pmf[0] > 0]
    assert len(row) == 2 and row.sum() == 1 << 16 and row.max() > 65000
    model = constriction.stream.model.Categorical(row / (1 << 16), perfect=False)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(np.full(100, 0 - lo[0], dtype=np.int32), model)  # the symbol index of the value 0
    assert 32 * len(enc.get_compressed()) <= 64  # 100 certain zeros cost next to nothing
