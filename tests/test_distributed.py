"""Distributed training on CPU with gloo and 2 processes: the same parameters as one process with the
whole batch (VAE; WGAN-GP with its gradient penalty's double backward), rank 0 alone writes, exact
resume on 2 ranks, a run moving between 1 and 2 processes, and a run killed under torchrun resumes.

Each test starts fresh processes (spawn, or a torchrun subprocess) with a deadline: a hung rank
fails the test instead of hanging CI.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from genlab.api.training import make_trainer
from genlab.config import TrainConfig
from genlab.data import DataSet
from genlab.models.gan import WGANGP, WGANGPConfig
from genlab.models.vae import VAE, VAEConfig
from genlab.runs import Run, load_checkpoint
from genlab.training import distributed

from conftest import blobs, info

# seconds for a whole group of processes: a hang detector, not a speed limit (a healthy group takes a few seconds
# alone and has taken over 120 on a 2-core machine under a load average of 8)
DEADLINE = 600
QUICK = TrainConfig(batch_size=16, lr=3e-3, eval_every=0, sample_every=0, checkpoint_every=0, log_every=2,
                    eval_metrics=(), threads=1)
# 2 ranks x 8 against 1 x 16, plain SGD (lr 0.05), 4 steps, in float64: the gradients are summed in
# another order, so the weights agree to rounding, not bit for bit. float64, because in float32 a critic
# unit whose input sits within rounding of LeakyReLU's kink takes the other slope in one of the two runs:
# on an AMD EPYC that moved a weight by 4e-3 at step 3 (the sums' order depends on the CPU's kernels),
# while in float64 the largest difference was 2.5e-12 (WGAN-GP) and 6e-17 (VAE). SGD, because Adam's
# first steps are lr * sign(g): a gradient that is 0 up to rounding (a WGAN critic's bias) flips sign
# between the two sums and moves its weight by +-lr either way.
ATOL = 1e-9
SGD_LR = 0.05


# --- models whose noise is a fixed draw per example, carried in the batch ("factors") ----------------
# Ranks draw different noise by design (per-rank seeds); to compare 2 x B with 1 x 2B exactly, every
# example brings its own noise, so a split batch sees the same draws as the whole one.
class KeyedVAE(VAE):
    def loss(self, phase, batch, *, step=0):
        self._eps = batch["factors"][:, : self.config.latent_dim]
        return super().loss(phase, batch, step=step)

    def posterior(self, x):
        post = super().posterior(x)
        if self.training:
            post.sample = lambda generator=None: post.mu + post.std * self._eps
        return post


class KeyedWGANGP(WGANGP):
    """z and the penalty's mixing weight of each example come from the batch."""

    def loss(self, phase, batch, *, step=0):
        self._noise = batch["factors"]
        return super().loss(phase, batch, step=step)

    def prior_sample(self, n, generator=None):
        if generator is None and self.training:
            return self._noise[:n, : self.config.latent_dim]
        return super().prior_sample(n, generator)


def keyed_data(noise_dim: int) -> DataSet:
    data = blobs(160)
    data.factors = torch.rand(len(data), noise_dim, generator=torch.Generator().manual_seed(9)) * 2 - 1
    return data


def build(kind: str, data: DataSet):
    """"vae" and "wgan-gp" with keyed noise; "plain": WGAN-GP drawing its noise from each rank's RNG."""
    torch.manual_seed(0)
    if kind == "vae":
        return KeyedVAE(VAEConfig(latent_dim=3, hidden=(32,), binarize=False), info(data))
    cls = WGANGP if kind == "plain" else KeyedWGANGP
    return cls(WGANGPConfig(latent_dim=4, arch="mlp", hidden=(32, 32)), info(data))


def _patch_penalty(model):
    """The gradient penalty's eps from the batch too; returns the function to put back."""
    from genlab import losses

    real = losses.gradient_penalty
    losses.gradient_penalty = lambda critic, x, fake, **kw: real(critic, x, fake, eps=model._noise[:, -1] / 2 + 0.5)
    return lambda: setattr(losses, "gradient_penalty", real)


# --- running a group of processes -------------------------------------------------------------------
def _entry(fn, rank: int, world: int, folder: str, args: tuple) -> None:
    torch.set_num_threads(1)
    if world > 1:
        torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                                             world_size=world, timeout=timedelta(seconds=60))
    try:
        fn(rank, world, Path(folder), *args)
    finally:
        if world > 1:
            distributed.shutdown()  # the library's teardown: collect the DDP wrappers, barrier, leave
    # the work (and its checks) is done: leave without the interpreter's teardown, where gloo's threads
    # are destroyed in no fixed order (a rare SIGABRT, "terminate called without an active exception",
    # that says nothing about training); a failure above still exits non-zero through the exception
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)


def spawn(fn, world: int, folder: Path, *args) -> None:
    """Run fn(rank, world, folder, *args) in ``world`` fresh processes joined by gloo; fail on a
    non-zero exit or when they outlive the deadline (then they are killed)."""
    (folder / "rendezvous").unlink(missing_ok=True)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_entry, args=(fn, r, world, str(folder), args)) for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + DEADLINE
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join()
    assert not hung, f"{len(hung)} of {world} processes hung"
    assert [p.exitcode for p in procs] == [0] * world


def _train(rank: int, world: int, folder: Path, kind: str, steps: int, tag: str, resume: bool = False,
           sgd: bool = False, name: str = "run") -> None:
    """Train ``kind`` to ``steps`` (resuming from ``name``'s checkpoint if asked); rank 0 saves the weights
    as ``tag``.pt. Ranks > 0 get a run folder of their own, which must stay empty."""
    with _float64(sgd):  # the exact comparison: float64 data and weights
        _train_and_save(rank, folder, kind, steps, tag, resume, sgd, name)


@contextlib.contextmanager
def _float64(on: bool):
    dtype = torch.get_default_dtype()
    if on:
        torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)


def _train_and_save(rank: int, folder: Path, kind: str, steps: int, tag: str, resume: bool, sgd: bool,
                    name: str) -> None:
    data = keyed_data(8)
    model = build(kind, data)
    put_back = _patch_penalty(model) if kind == "wgan-gp" else (lambda: None)
    try:
        run = Run(folder / (name if rank == 0 else f"{name}-rank{rank}"))
        run.path.mkdir(exist_ok=True)
        trainer = make_trainer(model, data, run, replace(QUICK, steps=steps), progress=False)
        if sgd:
            trainer.optimizers = {p.name: torch.optim.SGD([q for q in p.parameters() if q.requires_grad], lr=SGD_LR)
                                  for p in trainer.phases}
        if resume:
            trainer.load_state_dict(load_checkpoint(folder / name / "checkpoint.pt"))
        trainer.fit()
    finally:
        put_back()
    if rank == 0:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, folder / f"{tag}.pt")


def _weights(folder: Path, tag: str) -> dict[str, torch.Tensor]:
    return torch.load(folder / f"{tag}.pt")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vae", "wgan-gp"])
def test_two_ranks_equal_one_process_with_the_whole_batch(tmp_path, kind):
    steps = 4  # WGAN-GP: 4 x (5 critic steps with the gradient penalty + 1 generator step)
    _train(0, 1, tmp_path, kind, steps, "one", False, True)
    spawn(_train, 2, tmp_path, kind, steps, "two", False, True)
    one, two = _weights(tmp_path, "one"), _weights(tmp_path, "two")
    with _float64(True):
        start = build(kind, keyed_data(8)).state_dict()
    moved = max((one[k] - start[k]).abs().max().item() for k in one if one[k].is_floating_point())
    diff = max((one[k] - two[k]).abs().max().item() for k in one if one[k].is_floating_point())
    assert moved > 1e-2, moved  # the steps did change the weights
    assert diff < ATOL, (diff, moved)
    assert not list((tmp_path / "run-rank1").iterdir()), "rank 1 wrote into its run folder"


def _straight_and_first(rank: int, world: int, folder: Path) -> None:
    _train(rank, world, folder, "plain", 6, "straight", name="straight")
    _train(rank, world, folder, "plain", 3, "first")


@pytest.mark.slow
def test_two_ranks_resume_exactly_and_write_one_checkpoint_format(tmp_path):
    spawn(_straight_and_first, 2, tmp_path)  # 6 steps in one go; 3 steps, then (new processes) 3 more
    spawn(_train, 2, tmp_path, "plain", 6, "resumed", True)
    straight, resumed = _weights(tmp_path, "straight"), _weights(tmp_path, "resumed")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert len(state["rng_ranks"]) == 2 and torch.equal(state["rng_ranks"][0], state["rng"])
    assert not any(k.startswith("module.") for k in state["model"])
    # one process continues the 2-rank run (with its own noise), from the same step and items
    _train(0, 1, tmp_path, "plain", 8, "moved", True)
    single = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert single["step"] == 8 and len(single["rng_ranks"]) == 1
    assert set(single) == set(state) and set(single["model"]) == set(state["model"])
    # and back onto 2 ranks (rank 1 gets a fresh stream)
    spawn(_train, 2, tmp_path, "plain", 10, "back", True)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 10


# --- the command line under torchrun ------------------------------------------------------------------
def _torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "genlab", "-q", "train", *args]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds torchrun's workers in /proc")
def test_a_run_killed_under_torchrun_resumes(tmp_path):
    runs = tmp_path / "runs"
    common = ["--data", "toy2d:ring8", "--runs", str(runs), "--no-final", "--set", "train.batch_size=64",
              "--set", "train.eval_every=0", "--set", "train.sample_every=0", "--set", "train.log_every=10"]
    proc = subprocess.Popen(_torchrun(2, "gan", "--steps", "1000000", "--set", "train.checkpoint_every=25",
                                      *common), env=_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DEADLINE
        while not list(runs.glob("*/checkpoint.pt")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert list(runs.glob("*/checkpoint.pt")), proc.communicate(timeout=5)[0] if proc.poll() is not None else ""
        time.sleep(0.5)
    finally:  # a crash mid-way: both workers (torchrun starts each in its own session) and torchrun
        for pid in [*_children(proc.pid), proc.pid]:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    (run,) = runs.iterdir()
    killed_at = load_checkpoint(run / "checkpoint.pt")["step"]
    assert killed_at >= 25 and killed_at % 25 == 0
    target = killed_at + 40
    out = subprocess.run(_torchrun(2, "gan", "--resume", str(run), "--steps", str(target), *common[4:]),
                         env=_env(), capture_output=True, text=True, timeout=DEADLINE)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"finished at step {target}" in out.stdout and out.stdout.count("finished") == 1  # rank 0 prints
    assert load_checkpoint(run / "checkpoint.pt")["step"] == target
    # and on one process
    single = subprocess.run([sys.executable, "-m", "genlab", "-q", "train", "gan", "--resume", str(run), "--steps",
                             str(target + 10), "--no-final"], env=_env(), capture_output=True, text=True,
                            timeout=DEADLINE)
    assert single.returncode == 0, single.stderr[-3000:]
    assert load_checkpoint(run / "checkpoint.pt")["step"] == target + 10
