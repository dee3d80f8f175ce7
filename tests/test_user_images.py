"""One command's output is the next one's input: ``sample -n 1`` writes the image as it is, and any
image file a command takes is converted to the model's channels and size, saying so on stderr."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.config import RunConfig, TrainConfig
from genlab.data import load_data
from genlab.data.user_images import load_user_images
from genlab.explore.images import decode_upload
from genlab.models import build_model
from genlab.models.codec import CodecConfig
from genlab.runs import load_model, new_run, open_run
from genlab.training import Trainer

from conftest import blobs, info

QUIET = ["--set", "train.eval_every=0", "--set", "train.sample_every=0", "--set", "train.batch_size=16"]


def _train(root, *argv) -> str:
    assert main(["-q", "train", *argv, "--runs", str(root), "--no-final", *QUIET]) == 0
    (run,) = root.iterdir()
    return str(run)


@pytest.fixture(scope="module")
def dcign_run(tmp_path_factory) -> str:
    """A DC-IGN of 1-channel 12x12 shapes, trained for 3 steps."""
    return _train(tmp_path_factory.mktemp("dcign"), "dcign", "--data", "shapes", "--steps", "3",
                  "--set", "data.image_size=12", "--set", "model.channels=8,16", "--set", "model.hidden=32",
                  "--set", "train.eval_metrics=view_iou", "--set", "train.eval_n=50")


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> str:
    """A VAE of the 8x8 digits, trained for 3 steps."""
    return _train(tmp_path_factory.mktemp("vae"), "vae", "--data", "digits", "--steps", "3",
                  "--set", "model.latent_dim=4", "--set", "model.hidden=32", "--set", "train.eval_metrics=recon_mse")


def _conversions(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "genlab.data.user_images"]


def _wide_rgb(path) -> np.ndarray:
    """A 100x60 RGB picture: an orange block on black. Returns its pixels (60, 100, 3)."""
    arr = np.zeros((60, 100, 3), np.uint8)
    arr[10:50, 20:80] = (230, 120, 40)
    Image.fromarray(arr).save(path)
    return arr


# --- sample -n 1 writes the image as it is ---------------------------------------------------------
def test_sample_of_one_is_the_image_at_the_models_size(dcign_run, tmp_path):
    out = tmp_path / "one.png"
    assert main(["sample", dcign_run, "-n", "1", "-o", str(out), "--seed", "3"]) == 0
    with Image.open(out) as img:
        assert (img.size, img.mode) == ((12, 12), "L")  # no grid border, no upscaling
        written = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255)
    model, _ = load_model(open_run(dcign_run))
    with torch.no_grad():
        drawn = model.sample(1, generator=torch.Generator().manual_seed(3))  # what the command drew
    assert tuple(drawn.shape) == (1, 1, 12, 12)
    assert (written - drawn[0, 0]).abs().max() <= 0.5 / 255 + 1e-6  # the sample itself, rounded to 8 bits
    assert main(["sample", dcign_run, "-n", "3", "-o", str(tmp_path / "x.npz")]) == 0
    assert np.load(tmp_path / "x.npz")["x"].shape == (3, 1, 12, 12)  # model resolution


def test_sample_of_one_from_a_conditional_model_is_one_image(tmp_path):
    run = _train(tmp_path / "runs", "cgan", "--data", "digits", "--steps", "2", "--set", "model.latent_dim=4",
                 "--set", "model.hidden=32", "--set", "train.eval_metrics=sharpness")
    assert main(["sample", run, "-n", "1", "-o", str(tmp_path / "one.png")]) == 0
    assert Image.open(tmp_path / "one.png").size == (8, 8)  # not a row per class
    assert main(["sample", run, "-n", "1", "--label", "7", "-o", str(tmp_path / "seven.png")]) == 0
    assert Image.open(tmp_path / "seven.png").size == (8, 8)


# --- the round trip --------------------------------------------------------------------------------
def test_a_sampled_image_goes_to_transform_and_interpolate(dcign_run, tmp_path, caplog):
    one = tmp_path / "one.png"
    assert main(["sample", dcign_run, "-n", "1", "-o", str(one)]) == 0
    caplog.set_level(logging.INFO)
    assert main(["transform", dcign_run, str(one), "--rotate", "45", "-o", str(tmp_path / "t.png")]) == 0
    assert Image.open(tmp_path / "t.png").size == (12, 12)
    assert main(["interpolate", dcign_run, "--a", str(one), "--b", "test:0", "--steps", "3",
                 "-o", str(tmp_path / "i.png")]) == 0
    assert _conversions(caplog) == []  # already a model input: nothing converted, nothing said


def test_a_sampled_image_goes_to_project(vae_run, tmp_path):
    one = tmp_path / "one.png"
    assert main(["sample", vae_run, "-n", "1", "-o", str(one)]) == 0
    assert Image.open(one).size == (8, 8)
    assert main(["project", vae_run, str(one), "--starts", "1", "--project-steps", "3",
                 "-o", str(tmp_path / "z.npz")]) == 0
    assert np.load(tmp_path / "z.npz")["z"].shape == (1, 4)
    assert main(["interpolate", vae_run, "--a", str(one), "--b", str(one), "--steps", "3",
                 "-o", str(tmp_path / "i.png")]) == 0


def test_an_rgb_picture_of_another_size_is_converted_and_said(dcign_run, tmp_path, caplog):
    wide = tmp_path / "wide.png"
    arr = _wide_rgb(wide)
    caplog.set_level(logging.INFO)
    assert main(["transform", dcign_run, str(wide), "--rotate", "30", "-o", str(tmp_path / "t.png")]) == 0
    assert main(["interpolate", dcign_run, "--a", str(wide), "--b", "test:1", "-o", str(tmp_path / "i.png")]) == 0
    assert _conversions(caplog) == ["wide.png: 100x60 RGB -> 12x12 gray"] * 2
    x = load_user_images([wide], (1, 12, 12))  # (1, 1, 12, 12)
    grey = np.asarray(Image.fromarray(arr).convert("L").resize((12, 12), Image.Resampling.BILINEAR)) / 255
    assert x.shape == (1, 1, 12, 12) and np.allclose(x[0, 0].numpy(), grey, atol=1e-6)  # luminance, squashed
    assert load_user_images([wide], (3, 12, 12)).shape == (1, 3, 12, 12)


def test_grey_to_rgb_repeats_the_channel(tmp_path):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(tmp_path / "g.png")
    x = load_user_images([tmp_path / "g.png"], (3, 8, 8))[0]  # (3, 8, 8)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]) and float(x[0, 7, 7]) == pytest.approx(252 / 255)


def _rgba(path) -> None:
    """A white square on a transparent ground whose hidden colour is white too (as many editors save)."""
    arr = np.full((20, 20, 4), 255, np.uint8)
    arr[..., 3] = 0
    arr[5:15, 5:15, 3] = 255
    Image.fromarray(arr, "RGBA").save(path)


def test_transparency_is_laid_on_black_as_in_training_data_and_uploads(tmp_path, caplog):
    _rgba(tmp_path / "a.png")
    caplog.set_level(logging.INFO)
    x = load_user_images([tmp_path / "a.png"], (1, 20, 20))[0, 0]  # (20, 20)
    assert float(x[5:15, 5:15].min()) == 1.0 and float(x[:5].max()) == 0.0  # the ground is black, not white
    assert _conversions(caplog) == ["a.png: 20x20 RGBA -> 20x20 gray (transparency laid on black)"]
    folder = load_data(f"folder:{tmp_path}", channels=1)  # the same file as training data
    assert torch.equal(folder.x[0, 0], x)
    upload = decode_upload((tmp_path / "a.png").read_bytes(), (1, 20, 20))
    assert torch.equal(upload[0, 0], x)


def test_uploads_are_converted_as_files_are_and_said(tmp_path, caplog):
    arr = _wide_rgb(tmp_path / "wide.png")
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    caplog.set_level(logging.INFO)
    upload = decode_upload(buffer.getvalue(), (1, 12, 12))
    assert torch.equal(upload, load_user_images([tmp_path / "wide.png"], (1, 12, 12)))
    assert "upload: 100x60 RGB -> 12x12 gray" in [r.getMessage() for r in caplog.records]


def test_a_bad_image_file_is_one_line(dcign_run, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    assert main(["transform", dcign_run, str(tmp_path / "bad.png"), "-o", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("genlab: error: cannot read the image")


@pytest.mark.parametrize("arch, decoded_size", [("conv", (100, 60)), ("mlp", (12, 12))])
def test_compress_converts_channels_and_an_mlp_codec_also_the_size(arch, decoded_size, tmp_path, caplog):
    """A convolutional codec codes a picture at its own size; an MLP codec only at the model's."""
    data = blobs(64, size=12)
    cfg = RunConfig(model="codec", data_info=info(data), train=TrainConfig(steps=1, batch_size=16, eval_every=0,
                                                                           sample_every=0, eval_metrics=()),
                    model_config=CodecConfig(arch=arch, latent_dim=4, channels=(8, 8), hidden=(16,)))
    run = new_run(tmp_path / "runs", "codec", data.name)
    run.write_config(cfg)
    Trainer(build_model(cfg), data, run, cfg.train, progress=False).fit()
    _wide_rgb(tmp_path / "wide.png")
    caplog.set_level(logging.INFO)
    assert main(["compress", str(run.path), str(tmp_path / "wide.png"), "-o", str(tmp_path / "x.glc")]) == 0
    size = "100x60" if arch == "conv" else "12x12"
    assert _conversions(caplog) == [f"wide.png: 100x60 RGB -> {size} gray"]
    assert main(["decompress", str(tmp_path / "x.glc"), "-o", str(tmp_path / "out"), "--run", str(run.path)]) == 0
    with Image.open(tmp_path / "out" / "wide.png") as img:
        assert (img.size, img.mode) == (decoded_size, "L")


def test_a_folder_of_other_images_is_encoded_at_the_models_size(vae_run, tmp_path, caplog):
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(3):  # RGB pictures of 40x30 for a model of 8x8 grey digits
        Image.fromarray(np.full((30, 40, 3), 60 * i, np.uint8)).save(folder / f"{i}.png")
    caplog.set_level(logging.INFO)
    out = tmp_path / "z.npz"
    assert main(["encode", vae_run, "--data", f"folder:{folder}", "-o", str(out)]) == 0
    assert np.load(out)["z"].shape == (3, 4)
    assert any("read at 8x8 with 1 channel(s), the model's" in r.getMessage() for r in caplog.records)
