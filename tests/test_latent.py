"""Latent tools (interpolation, traversals, projection, attributes) and InfoGAN's codes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from genlab.api.training import make_trainer
from genlab.cli import main
from genlab.config import RunConfig, TrainConfig
from genlab.evaluation import evaluate
from genlab.latent import slerp
from genlab.latent.attributes import apply_attribute, arithmetic, attribute_vector, slant, thickness
from genlab.latent.interpolate import interpolate
from genlab.latent.project import project
from genlab.latent.references import extremes
from genlab.latent.traverse import code_grid, dimension_grid, sweep
from genlab.models import build_model
from genlab.models.infogan import CodeLayout, InfoGAN, InfoGANConfig
from genlab.runs import new_run

from conftest import blobs, info


def test_slerp_ends_are_exact_and_unit_vectors_stay_unit():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g)
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    path = interpolate(a, b, 11, spherical=True)  # (5, 11, 16)
    assert torch.allclose(path[:, 0], a, atol=1e-6) and torch.allclose(path[:, -1], b, atol=1e-6)
    assert torch.allclose(path.norm(dim=2), torch.ones(5, 11), atol=1e-5)
    lin = interpolate(a, b, 11)
    assert lin[:, 5].norm(dim=1).max() < 1 - 1e-3  # lerp cuts inside the sphere
    assert torch.allclose(slerp(a, a, torch.linspace(0, 1, 3)), a.unsqueeze(1).expand(5, 3, 16), atol=1e-6)


def test_sweep_and_grids_have_the_right_shapes():
    z = torch.zeros(3, 4)
    s = sweep(z, 2, torch.tensor([-1.0, 0.0, 1.0]))
    assert s.shape == (3, 3, 4) and torch.equal(s[:, :, 2], torch.tensor([-1.0, 0.0, 1.0]).expand(3, 3))
    assert s[:, :, [0, 1, 3]].abs().sum() == 0

    class Linear(torch.nn.Module):  # decode z (N, 4) -> images (N, 1, 2, 2)
        device = torch.device("cpu")

        def decode(self, z):
            return z.view(-1, 1, 2, 2)

    grid = dimension_grid(Linear(), torch.zeros(4), [0, 3], torch.linspace(-1, 1, 5))
    assert grid.shape == (2, 5, 1, 2, 2) and grid[1, :, 0, 1, 1].tolist() == pytest.approx([-1, -0.5, 0, 0.5, 1])


def tiny_infogan(data, **kw) -> InfoGAN:
    cfg = InfoGANConfig(latent_dim=3, hidden=(32,), channels=(8, 16), categories=4, **kw)
    torch.manual_seed(0)
    return InfoGAN(cfg, info(data))


def test_code_layout_composes_and_splits():
    layout = CodeLayout(noise=3, categories=4, cat_codes=2, cont_codes=1)
    noise, cat, cont = torch.randn(5, 3), torch.randint(4, (5, 2)), torch.rand(5, 1)
    z = layout.compose(noise, cat, cont)
    assert z.shape == (5, layout.size) == (5, 12)
    n2, c2, k2 = layout.split(z)
    assert torch.equal(n2, noise) and torch.equal(c2, cat) and torch.equal(k2, cont)


def test_infogan_code_grid_and_q_in_the_critic_phase():
    data = blobs()
    model = tiny_infogan(data).eval()
    grid = code_grid(model, 1, torch.linspace(-2, 2, 5))
    assert grid.shape == (4, 5, 1, 12, 12)
    critic = {id(p) for p in model.phases()[0].parameters()}
    assert all(id(p) in critic for p in model.q.parameters())
    assert not any(id(p) in critic for p in model.generator.parameters())
    drawn = model.sample_with_latents(6)
    assert drawn["z"].shape == (6, model.latent_size) and drawn["code_cat"].shape == (6, 1)
    assert drawn["code_cont"].shape == (6, 2) and drawn["code_cont"].abs().max() <= 1


@pytest.mark.slow
def test_infogan_training_raises_the_information_term(tmp_path):
    """L_I (mi_cat, nats) after a few seconds of training is well above its start, towards ln K."""
    data = blobs()
    model_cfg = dict(latent_dim=3, hidden=(32,), channels=(8, 16), categories=4)
    cfg = RunConfig(model="infogan", model_config=InfoGANConfig(**model_cfg), data_info=info(data),
                    train=TrainConfig(steps=150, batch_size=64, eval_every=0, sample_every=0, checkpoint_every=0,
                                      eval_metrics=(), threads=1))
    run = new_run(tmp_path, "infogan", data.name)
    run.write_config(cfg)
    trainer = make_trainer(build_model(cfg), data, run, cfg.train, progress=False)
    batch = {"x": data.tensors("train")[0][:64]}
    torch.manual_seed(1)
    before = float(trainer.model.loss("generator", batch)["mi_cat"])
    trainer.fit()
    torch.manual_seed(1)
    after = float(trainer.model.loss("generator", batch)["mi_cat"])
    assert after > before + 0.5 and after <= math.log(4) + 1e-4


class _CodeModel(torch.nn.Module):
    """A stand-in generator: code k draws a real image of class perm[k] (or ignores the code)."""

    def __init__(self, data, perm, honest: bool):
        super().__init__()
        self.code_layout = CodeLayout(noise=2, categories=4, cat_codes=1, cont_codes=0)
        x, y = data.tensors("train")
        self.by_class = [x[y == c] for c in range(4)]
        self.pool, self.perm, self.honest = x, perm, honest
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def prior_sample(self, n, generator=None):
        noise = torch.randn(n, 2, generator=generator)
        return self.code_layout.compose(noise, torch.randint(4, (n, 1), generator=generator), torch.zeros(n, 0))

    def decode(self, z):
        _, cat, _ = self.code_layout.split(z)
        i = torch.arange(len(z))
        if self.honest:
            return torch.stack([self.by_class[self.perm[int(k)]][j % 10] for j, k in zip(i, cat[:, 0], strict=True)])
        return self.pool[torch.randint(len(self.pool), (len(z),))]


@pytest.mark.slow
def test_code_acc_is_one_for_a_perfect_code_and_near_chance_for_a_random_one():
    data = blobs()
    perfect = evaluate(_CodeModel(data, [2, 0, 3, 1], True), data, metrics=["code_acc", "code_nmi"], n=200)
    assert perfect["values"]["code_acc"] == pytest.approx(1.0, abs=0.02)
    assert perfect["values"]["code_nmi"] > 0.9
    torch.manual_seed(0)
    random = evaluate(_CodeModel(data, [0, 1, 2, 3], False), data, metrics=["code_acc", "code_nmi"], n=400)
    assert random["values"]["code_acc"] < 0.4 and random["values"]["code_nmi"] < 0.05


def test_projection_lowers_the_loss_from_its_start():
    data = blobs()
    model = tiny_infogan(data)
    x, _ = data.tensors("test", limit=4)
    got = project(model, x, starts=3, steps=40, lr=0.05)
    assert got["z"].shape == (4, model.latent_size) and got["x_hat"].shape == x.shape
    assert (got["loss"] < got["start_loss"]).all()


def test_attribute_vector_is_the_difference_of_means_and_applies_linearly():
    z_with = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    z_without = torch.tensor([[0.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    v = attribute_vector(z_with, z_without)
    assert v.tolist() == [2.0, 1.0]
    moved = apply_attribute(torch.zeros(1, 2), v, torch.tensor([-1.0, 0.0, 2.0]))
    assert moved[0].tolist() == [[-2.0, -1.0], [0.0, 0.0], [4.0, 2.0]]
    assert arithmetic(torch.ones(2), torch.zeros(2), torch.ones(2)).tolist() == [2.0, 2.0]


class _Ranked:
    """A labelled stand-in data set: item i is an image filled with value i / 100; classes alternate."""

    labelled, num_classes = True, 2

    def __init__(self, n=100):
        self.y = torch.arange(n) % 2

    def indices(self, split):
        return torch.arange(len(self.y))

    def images(self, index):
        return (index.float() / 100).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)


def test_measure_references_spread_over_each_class_half():
    data = _Ranked()
    # 3 per class from its top 25, at the midpoints of three bins of ranks (4, 12, 20), never the most extreme
    picked = extremes(data, thickness, split="train", k=6, highest=True)
    assert (thickness(picked) * 100).round().tolist() == [90, 74, 58, 91, 75, 59]
    low = extremes(data, thickness, split="train", k=6, highest=False)
    assert (thickness(low) * 100).round().tolist() == [8, 24, 40, 9, 25, 41]
    most = extremes(data, thickness, split="train", k=4, highest=True, share=0.0)  # the k most extreme
    assert (thickness(most) * 100).round().tolist() == [98, 96, 99, 97]


def test_measures_see_thickness_and_slant():
    img = torch.zeros(1, 1, 20, 20)
    img[0, 0, 2:18, 9:11] = 1  # a vertical bar
    thick = torch.nn.functional.max_pool2d(img, 3, 1, 1)  # the same bar, dilated
    assert thickness(thick) > thickness(img)
    right = torch.zeros(1, 1, 20, 20)
    for r in range(2, 18):  # a bar whose top leans right (row 2 is the top)
        right[0, 0, r, 10 + (10 - r) // 3] = 1
    assert abs(float(slant(img))) < 1e-6 and float(slant(right)) > 0.2
    assert float(slant(right.flip(3))) < -0.2


@pytest.fixture(scope="module")
def infogan_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["-q", "train", "infogan", "--data", "digits", "--steps", "30", "--runs", str(runs), "--no-final",
                 "--set", "model.channels=8,16", "--set", "model.hidden=32", "--set", "train.eval_every=0",
                 "--set", "train.sample_every=0"]) == 0
    (run,) = runs.iterdir()
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == "auto"  # the family's default
    return run


def test_infogan_cli_sample_traverse_project_evaluate(infogan_run, tmp_path, capsys):
    assert main(["sample", str(infogan_run), "-n", "6", "-o", str(tmp_path / "s.npz")]) == 0
    arrays = np.load(tmp_path / "s.npz")
    assert arrays["code_cat"].shape == (6, 1) and arrays["code_cont"].shape == (6, 2)
    assert arrays["code_cat"].dtype.kind == "i"
    assert main(["traverse", str(infogan_run), "--steps", "5", "-o", str(tmp_path / "t.png")]) == 0
    assert "rows: categories" in capsys.readouterr().out
    assert main(["project", str(infogan_run), "test:0,1", "--starts", "2", "--project-steps", "10",
                 "-o", str(tmp_path / "z.npz"), "--picture", str(tmp_path / "p.png")]) == 0
    assert np.load(tmp_path / "z.npz")["z"].shape == (2, 74) and (tmp_path / "p.png").is_file()
    assert main(["evaluate", str(infogan_run), "--metrics", "code_acc,code_acc_real", "-n", "100"]) == 0
    assert "code_acc_real" in capsys.readouterr().out
    assert main(["neighbours", str(infogan_run), "-n", "8", "-o", str(tmp_path / "nn.png")]) == 0
    assert "held-out real" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["traverse", "RUN", "--unit", "rotation"], "names no latent units"),
    (["traverse", "RUN", "--code", "5"], "continuous code 5 does not exist"),
    (["project", "RUN", "test:100000"], "the test split has"),
    (["project", "RUN", "missing.png"], "neither an image file nor a reference"),
    (["attribute", "RUN", "--with", "thickness+"], "give --with REF... and --without REF..."),
    (["interpolate", "RUN", "--a", "test:0"], "give both ends"),
])
def test_latent_commands_bad_input_is_one_line(infogan_run, tmp_path, capsys, argv, message):
    argv = [str(infogan_run) if a == "RUN" else a for a in argv]
    out = "o.npz" if argv[0] == "project" else "o.png"
    assert main([*argv, "-o", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_vae_attribute_and_arithmetic_commands(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["-q", "train", "vae", "--data", "digits", "--steps", "30", "--runs", str(runs), "--no-final",
                 "--set", "train.eval_every=0", "--set", "train.sample_every=0"]) == 0
    (run,) = runs.iterdir()
    capsys.readouterr()
    assert main(["attribute", str(run), "--with", "thickness+", "--without", "thickness-", "--k", "10",
                 "--apply", "test:0,1,2", "--save", str(tmp_path / "v.npz"), "-o", str(tmp_path / "a.png")]) == 0
    out = capsys.readouterr().out
    assert "thickness" in out and "class_kept" in out
    assert np.load(tmp_path / "v.npz")["vector"].shape == (20,)
    assert main(["attribute", str(run), "--vector", str(tmp_path / "v.npz"), "-o", str(tmp_path / "b.png")]) == 0
    assert main(["arithmetic", str(run), "--a", "label=1", "--b", "test:0", "--c", "test:1",
                 "-o", str(tmp_path / "c.png")]) == 0
    assert main(["traverse", str(run), "--from", "test:3", "--dims", "3", "-o", str(tmp_path / "t.png")]) == 0
    assert main(["interpolate", str(run), "--corners", "--steps", "4", "-o", str(tmp_path / "i.png")]) == 0
