"""The photo codec: random crops, any-size RGB round trips, variable rate, published references, BD-rate."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.compression import compress, decompress
from genlab.compression import format as glc
from genlab.compression.published import PUBLISHED_KODAK, published_curves
from genlab.compression.rd import bd_psnr, bd_rate, plot_rd, rate_at
from genlab.config import DataInfo
from genlab.data.user import load_folder
from genlab.errors import GenlabError
from genlab.models.codec import Codec, CodecConfig


def _coordinates(h: int, w: int, tag: int) -> np.ndarray:
    """An RGB image whose pixel (y, x) is (y, x, tag): every window of it says where it was cut."""
    yy, xx = np.mgrid[:h, :w]
    return np.stack([yy, xx, np.full_like(yy, tag)], -1).astype(np.uint8)


def test_random_crops_never_resize(tmp_path):
    sizes = [(40, 57), (61, 33), (48, 48), (35, 70)]
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(_coordinates(h, w, 10 * i)).save(tmp_path / f"{i}.png")
    data = load_folder(str(tmp_path), crop=16)
    assert data.shape == (3, 16, 16) and not data.in_memory and data.read_workers == 0
    torch.manual_seed(0)
    train = data.indices("train")
    windows = set()
    for _ in range(20):
        batch = (data.images(train) * 255).round().to(torch.uint8)  # (B, 3, 16, 16)
        for i, crop in zip(train.tolist(), batch, strict=True):
            h, w = sizes[i]
            rows, cols, tag = crop[0].long(), crop[1].long(), crop[2]
            assert torch.all(tag == 10 * i)  # from the right image
            assert torch.equal(rows, rows[:, :1].expand(-1, 16))  # whole rows: not resized, not rotated
            assert torch.equal(rows[:, 0], rows[0, 0] + torch.arange(16))
            step = cols[0, 1] - cols[0, 0]  # +1, or -1 when flipped
            assert abs(int(step)) == 1 and torch.equal(cols[0], cols[0, 0] + step * torch.arange(16))
            assert 0 <= rows.min() and rows.max() < h and 0 <= cols.min() and cols.max() < w
            windows.add((i, int(rows[0, 0]), int(cols.min()), int(step)))
    assert len(windows) > 30  # fresh crops (and flips) each read
    (j,) = data.indices("val").tolist()
    h, w = sizes[j]
    a = (data.images(torch.tensor([j, j])) * 255).round().to(torch.uint8)
    assert torch.equal(a[0], a[1])  # held-out items: the same centre crop each time
    assert int(a[0, 0, 0, 0]) == (h - 16) // 2 and int(a[0, 1, 0, 0]) == (w - 16) // 2
    with pytest.raises(GenlabError, match="smaller than data.crop=36"):
        load_folder(str(tmp_path), crop=36)
    large = load_folder(str(tmp_path), crop=16, memory_limit=1000)  # too large to keep: decoded at each read
    assert large.read.cache is None
    assert torch.equal(large.images(torch.tensor([j])), a[:1].float() / 255)


def _codec(levels=(1, 4, 7), seed: int = 0, last_stage: str = "gdn_conv3") -> Codec:
    torch.manual_seed(seed)
    cfg = CodecConfig(latent_dim=8, channels=(8, 8), hyper_channels=8, hyper_latent=4, rate_levels=levels,
                      last_stage=last_stage)
    return Codec(cfg, DataInfo(shape=(3, 16, 16), kind="image")).eval()


ODD = [(3, 37, 53), (3, 64, 48), (3, 17, 9), (3, 5, 5)]


def test_the_latent_layout_is_balles_the_last_stride_2_convolution_gives_y():
    model = _codec(last_stage="latent")
    convs = [m for m in model.g_a if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [(3, 8, (2, 2)), (8, 8, (2, 2))]
    assert isinstance(model.g_a[-1], torch.nn.Conv2d)  # no GDN on y
    assert isinstance(model.g_s[0], torch.nn.ConvTranspose2d) and model.g_s[0].in_channels == 8
    y = model.analysis(torch.rand(1, 3, 37, 53))
    assert y.shape == (1, 8, 10, 14) and model.synthesize(y, (3, 37, 53)).shape == (1, 3, 37, 53)
    other = _codec(last_stage="gdn_conv3")
    assert [m.kernel_size for m in other.g_a if isinstance(m, torch.nn.Conv2d)][-1] == (3, 3)


@pytest.mark.parametrize("last_stage", ["gdn_conv3", "latent"])
def test_any_size_rgb_round_trips_bit_exactly_at_every_level(last_stage):
    model = _codec(last_stage=last_stage)
    images = [torch.rand(s, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(ODD)]
    rates = []
    for q in model.qualities:
        model.set_quality(q)
        data = compress(model, images)
        assert glc.unpack(data).quality == q
        model.set_quality(model.qualities[0])  # the decoder takes the level from the file
        decoded, _ = decompress(model, data)
        assert model.quality == q
        assert [tuple(x.shape) for x in decoded] == ODD  # padded to the stride, cropped back
        for x, d in zip(images, decoded, strict=True):
            assert torch.equal(d, model.reconstruct(x[None])[0])
        rates.append(len(data))
    assert rates == sorted(rates) and rates[0] < rates[-1]  # a higher quality spends more bits


def test_a_file_naming_a_level_the_model_lacks_is_refused():
    model = _codec()
    parsed = glc.unpack(compress(model, [torch.rand(3, 20, 20)]))
    bad = glc.pack(dataclasses.replace(parsed, quality=5))
    with pytest.raises(GenlabError, match="says quality 5"):
        decompress(model, bad, source="x.glc")
    with pytest.raises(GenlabError, match="codes at quality 1, 4, 7, not 5"):
        model.set_quality(5)


def test_files_are_the_same_bytes_in_another_process(tmp_path):
    model = _codec()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    images = [torch.rand(s, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(ODD[:2])]
    torch.save(images, tmp_path / "x.pt")
    mine = compress(model, images)
    script = (f"import sys, torch; sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r}); "
              "from test_compression_photos import _codec; from genlab.compression import compress; "
              f"m = _codec(); m.load_state_dict(torch.load({str(tmp_path / 'w.pt')!r}, weights_only=True)); "
              f"x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True); "
              f"open({str(tmp_path / 'o.glc')!r}, 'wb').write(compress(m, x))")
    subprocess.run([sys.executable, "-c", script], check=True, env={"OMP_NUM_THREADS": "2", **_env()})
    assert (tmp_path / "o.glc").read_bytes() == mine


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def test_published_points_are_data_with_their_source_and_plotted_as_published(tmp_path):
    for ref in PUBLISHED_KODAK.values():
        assert "CompressAI" in ref["source"] and "Ballé" in ref["source"]
        bpp, psnr = zip(*ref["points"], strict=True)
        assert list(bpp) == sorted(bpp) and list(psnr) == sorted(psnr)
    assert PUBLISHED_KODAK["balle2018_hyperprior"]["points"][2] == (0.302, 30.62)
    curves = {"jpeg": [{"quality": 10, "bpp": 0.327, "psnr": 26.67}, {"quality": 75, "bpp": 1.368, "psnr": 34.52}]}
    labels = plot_rd(curves, tmp_path / "rd.png", published=PUBLISHED_KODAK)
    assert sum("(published)" in label for label in labels) == 2 and (tmp_path / "rd.png").stat().st_size > 0
    hyper = published_curves()["balle2018_hyperprior"]
    assert -60 < bd_rate(hyper, curves["jpeg"]) < -45  # the published codec against JPEG here: about -55%


def test_rate_at_a_fixed_psnr():
    curve = [{"bpp": b, "psnr": p} for b, p in ((0.25, 26), (0.5, 29), (1.0, 32), (2.0, 35))]
    assert rate_at(curve, 29) == pytest.approx(0.5)
    assert rate_at(curve, 30.5) == pytest.approx(0.5 * 2 ** 0.5)  # halfway in log-rate
    assert rate_at(curve, 36) is None  # never reached
    assert rate_at(curve, 25) is None  # below the lowest measured rate
    # a point that loses quality at a higher rate is passed over: interpolate from the best so far
    bumpy = [{"bpp": 0.25, "psnr": 26}, {"bpp": 0.5, "psnr": 28}, {"bpp": 1.0, "psnr": 27}, {"bpp": 2.0, "psnr": 30}]
    assert rate_at(bumpy, 29) == pytest.approx(0.5 * 4 ** 0.5)
    assert rate_at([{"bpp": 1.0, "file_bpp": 1.5, "psnr": 30}], 30, rate="file_bpp") == pytest.approx(1.5)


def test_bd_rate_known_cases():
    anchor = [{"bpp": b, "psnr": p} for b, p in ((0.25, 26), (0.5, 29), (1.0, 32), (2.0, 35))]
    assert bd_rate(anchor, anchor) == pytest.approx(0.0)
    assert bd_rate([{**p, "bpp": 2 * p["bpp"]} for p in anchor], anchor) == pytest.approx(100.0)
    # 1 dB better everywhere on a curve gaining 3 dB per doubling: 2**(-1/3) the bits
    better = [{**p, "psnr": p["psnr"] + 1} for p in anchor]
    assert bd_rate(better, anchor) == pytest.approx(100 * (2 ** (-1 / 3) - 1), abs=0.01)
    assert bd_rate([{"bpp": 1.0, "psnr": 50}], anchor) is None  # no common PSNR range
    assert bd_psnr(better, anchor) == pytest.approx(1.0)
    assert bd_psnr([{**p, "psnr": p["psnr"] - 10} for p in anchor], anchor) == pytest.approx(-10.0)  # no PSNR overlap
    assert bd_psnr([{"bpp": 9.0, "psnr": 50}], anchor) is None  # no common rate range


def test_a_photo_codec_trains_on_crops_and_codes_and_compares_rgb_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):  # smooth colour fields with some texture, sizes that differ
        h, w = 70 + 9 * i, 90 - 7 * i
        base = np.stack(np.mgrid[:h, :w], -1).sum(-1, keepdims=True) * [1, 2, 3] + i * 40
        Image.fromarray(((base + rng.integers(0, 30, (h, w, 3))) % 256).astype(np.uint8)).save(photos / f"{i}.png")
    args = ["train", "codec", "--data", f"folder:{photos}", "--steps", "3", "--no-final", "--runs",
            str(tmp_path / "runs"), "--set", "data.crop=32", "--set", "model.channels=[8,8]",
            "--set", "model.latent_dim=8", "--set", "model.hyper_channels=8", "--set", "model.hyper_latent=4",
            "--set", "model.rate_levels=2,5", "--set", "train.batch_size=2", "--set", "train.eval_every=0",
            "--set", "train.sample_every=0", "--set", "train.threads=1"]
    assert main(args) == 0
    (run,) = (tmp_path / "runs").iterdir()
    out = tmp_path / "a.glc"
    assert main(["compress", str(run), str(photos / "1.png"), str(photos / "3.png"), "-o", str(out), "-q", "5"]) == 0
    assert glc.unpack(out.read_bytes()).quality == 5
    assert main(["decompress", str(out), "-o", str(tmp_path / "dec"), "--run", str(run)]) == 0
    for name in ("1.png", "3.png"):  # full size, not the crop
        assert Image.open(tmp_path / "dec" / name).size == Image.open(photos / name).size
    capsys.readouterr()
    assert main(["compress", str(run), str(photos / "1.png"), "-o", str(out), "-q", "3"]) == 2
    assert "codes at quality 2, 5, not -q 3" in capsys.readouterr().err
    result = tmp_path / "rd.json"
    assert main(["rd", str(run), "--data", f"folder:{photos}", "-o", str(tmp_path / "rd.png"),
                 "--json", str(result)]) == 0
    table = capsys.readouterr().out
    assert "genlab codec" in table and "BD-rate vs_webp" in table
    rd = json.loads(result.read_text())
    assert rd["images"] == 4 and sorted(p["quality"] for p in rd["curves"]["genlab"]) == [2, 5]
    assert {"jpeg", "webp", "avif", "png"} <= set(rd["curves"])
    assert all(p["file_bpp"] > p["bpp"] for p in rd["curves"]["genlab"])  # the whole file counts its header


def _codec_round(lmbda: float) -> Codec:
    torch.manual_seed(0)
    cfg = CodecConfig(latent_dim=8, channels=(8, 8), hyper_channels=8, hyper_latent=4, decoder_input="round",
                      lmbda=lmbda)
    return Codec(cfg, DataInfo(shape=(3, 16, 16), kind="image")).train()


def test_decoder_input_round_trains_g_s_on_what_it_decodes_with_gradients_to_g_a():
    model, x = _codec_round(0.01), torch.rand(2, 3, 16, 16)
    torch.manual_seed(1)
    first = model.loss(None, {"x": x})
    torch.manual_seed(2)
    second = model.loss(None, {"x": x})
    assert first["mse"] == second["mse"]  # g_s read round(y): no noise in the distortion
    assert first["bpp"] != second["bpp"]  # the rate still takes y + noise
    with torch.no_grad():
        decoded = model.synthesize(torch.round(model.analysis(x)), (3, 16, 16))
    assert torch.allclose(first["mse"], (decoded - x).pow(2).mean())
    grads = []
    for lmbda in (0.01, 1.0):  # the distortion's weight changes g_a's gradient: it passes the rounding
        model = _codec_round(lmbda)
        torch.manual_seed(1)
        model.loss(None, {"x": x})["loss"].backward()
        grads.append(model.g_a[0].weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])
