"""End-to-end runs of the `genlab` command, and the one-line errors for bad input."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from genlab.cli import main

FAST = ["--set", "train.eval_every=20", "--set", "train.eval_n=100", "--set", "train.sample_every=20",
        "--set", "model.hidden=32", "--set", "model.latent_dim=2", "--set", "train.batch_size=64"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["-q", "train", "vae", "--data", "digits", "--steps", "40", "--runs", str(runs), *FAST]) == 0
    (run,) = runs.iterdir()
    return run


def test_train_writes_the_record_and_pictures(trained_run, capsys):
    for f in ("config.json", "best.pt", "checkpoint.pt", "metrics.json", "samples.png", "recon.png",
              "interp.png", "interp_slerp.png", "latent.png", "manifold.png", "curves.png"):
        assert (trained_run / f).is_file(), f
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {"fd", "kid", "precision", "recall", "elbo", "nll", "recon_mse", "psnr"} <= set(metrics["values"])
    assert "fd" in metrics["floor"]


def test_sample_png_and_npz(trained_run, tmp_path):
    assert main(["sample", str(trained_run), "-n", "9", "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    assert main(["sample", str(trained_run), "-n", "9", "-o", str(tmp_path / "s.npz")]) == 0
    arrays = np.load(tmp_path / "s.npz")
    assert arrays["x"].shape == (9, 1, 8, 8) and arrays["z"].shape == (9, 2)
    assert 0 <= arrays["x"].min() and arrays["x"].max() <= 1


def test_reconstruct_interpolate_evaluate(trained_run, tmp_path):
    assert main(["reconstruct", str(trained_run), "-o", str(tmp_path / "r.png")]) == 0
    assert main(["interpolate", str(trained_run), "--slerp", "-o", str(tmp_path / "i.png")]) == 0
    out = tmp_path / "m.json"
    assert main(["evaluate", str(trained_run), "--metrics", "elbo,nll,fd", "--nll-k", "20",
                 "--json", str(out)]) == 0
    values = json.loads(out.read_text())["values"]
    assert set(values) == {"elbo", "nll", "fd"} and values["nll"] <= -values["elbo"] + 1e-3


def write_idx(path, images, labels=None):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), *images.shape[1:]) + images.tobytes())
    if labels is not None:
        lab = str(path).replace("images-idx3-ubyte", "labels-idx1-ubyte")
        with gzip.open(lab, "wb") as f:
            f.write(struct.pack(">II", 0x801, len(labels)) + labels.tobytes())


def test_encode_user_idx_data(trained_run, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 10, 30).astype(np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, labels)
    out = tmp_path / "z.npz"
    assert main(["encode", str(trained_run), "--data", f"idx:{tmp_path}/t10k-images-idx3-ubyte.gz",
                 "-o", str(out)]) == 0
    z = np.load(out)
    assert z["z"].shape == (30, 2) and (z["y"] == labels).all()


def test_resume_continues_the_run(trained_run):
    assert main(["-q", "train", "vae", "--resume", str(trained_run), "--steps", "50", "--no-final"]) == 0
    import torch

    assert torch.load(trained_run / "checkpoint.pt", weights_only=True)["step"] == 50


def test_list_shows_the_registries(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("vae", "ae", "mnist5k", "toy2d:ring8", "folder:PATH", "fd", "nll", "precision"):
        assert name in out


def bad(argv, capsys, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("genlab: error:"), err
    assert pattern in err, err


def test_bad_inputs_get_one_line_and_exit_2(trained_run, tmp_path, capsys):
    bad(["train", "gan3000"], capsys, "unknown model 'gan3000'")
    bad(["train", "vae", "--data", "mnist6k"], capsys, "unknown data set 'mnist6k'")
    bad(["train", "vae", "--set", "model.nosuch=1"], capsys, "no such option")
    bad(["train", "vae", "--set", "model.latent_dim=many"], capsys, "expected int")
    bad(["train", "vae", "--time", "soon"], capsys, "duration")
    bad(["train", "vae", "--set", "model.likelihood=poisson"], capsys, "must be auto, bernoulli, gaussian or")
    bad(["train", "vae", "--data", f"folder:{tmp_path}/nope"], capsys, "nope")
    bad(["train", "vae", "--bogus"], capsys, "unrecognized arguments")
    bad(["sample", str(tmp_path / "norun"), "-o", str(tmp_path / "x.png")], capsys, "does not exist")
    bad(["sample", str(trained_run), "-o", str(tmp_path / "x.gif")], capsys, ".png or .npz")
    bad(["evaluate", str(trained_run), "--metrics", "fid9"], capsys, "unknown metric")
    # images of another size are read at the model's (test_user_images); points cannot be
    bad(["encode", str(trained_run), "--data", "toy2d:ring8", "-o", str(tmp_path / "z.npz")], capsys,
        "shape (2,)")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text((trained_run / "config.json").read_text())
    (corrupt / "best.pt").write_bytes(b"not a checkpoint at all")
    bad(["sample", str(corrupt), "-o", str(tmp_path / "x.png")], capsys, "corrupt")


@pytest.mark.slow
def test_debug_shows_the_traceback_and_exit_codes_hold_in_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genlab", "train", "nosuch"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "unknown model" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "genlab", "--debug", "train", "nosuch"], capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_0(tmp_path):
    """A real SIGINT to a training process: it saves a checkpoint and exits 0."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "genlab", "-q", "train", "ae", "--data", "digits",
                             "--steps", "1000000", "--runs", str(tmp_path), "--set", "train.log_every=10",
                             "--set", "train.eval_every=0", "--set", "train.sample_every=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("*/stats.jsonl")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "interrupted at step" in out
    import torch

    (ckpt,) = tmp_path.glob("*/checkpoint.pt")
    assert torch.load(ckpt, weights_only=True)["step"] >= 10, (out, err)


def test_bad_image_folder_gets_one_line(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.new("L", (8, 8), 128).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    bad(["train", "ae", "--data", f"folder:{folder}", "--runs", str(tmp_path / "runs")], capsys, "broken.png")
    (folder / "broken.png").unlink()
    Image.new("L", (10, 10), 128).save(folder / "bigger.png")
    bad(["train", "ae", "--data", f"folder:{folder}", "--runs", str(tmp_path / "runs")], capsys, "image_size")
    empty = tmp_path / "empty"
    empty.mkdir()
    bad(["train", "ae", "--data", f"folder:{empty}"], capsys, "holds no images")


def test_a_closed_pipe_ends_the_output_quietly():
    """`genlab list | head -1`: the reader leaves early; no BrokenPipeError traceback on stderr."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "genlab", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # before genlab has written everything
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
