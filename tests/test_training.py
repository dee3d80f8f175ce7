"""The trainer: it learns, resumes exactly, survives kills, saves on Ctrl-C and stops on NaN."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import genlab.evaluation  # noqa: F401
from genlab.api.training import make_trainer
from genlab.config import RunConfig, TrainConfig
from genlab.errors import TrainingDiverged
from genlab.models import build_model
from genlab.models.vae import VAEConfig
from genlab.runs import load_checkpoint, new_run, save_checkpoint
from genlab.runs.logs import read_jsonl

from conftest import blobs, info

QUICK = TrainConfig(batch_size=32, eval_every=0, sample_every=0, checkpoint_every=0, log_every=5,
                    eval_metrics=("elbo",))


def make(tmp_path, data, train=QUICK, **model):
    cfg = RunConfig(model="vae", model_config=VAEConfig(latent_dim=4, hidden=(64,), **model),
                    train=train, data_info=info(data))
    run = new_run(tmp_path, "vae", data.name)
    run.write_config(cfg)
    return make_trainer(build_model(cfg), data, run, cfg.train, progress=False), run


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tmp_path):
    data = blobs(200)
    whole, _ = make(tmp_path, data, replace(QUICK, steps=30))
    whole.fit()
    first, run = make(tmp_path, data, replace(QUICK, steps=12))
    first.fit()
    second = make_trainer(build_model(run.read_config()), data, run, replace(QUICK, steps=30), progress=False)
    second.resume()
    assert second.step == 12
    second.fit()
    assert second.step == 30
    assert torch.equal(params(whole.model), params(second.model))


def test_lr_milestones_multiply_every_phase_rate_from_that_step_and_a_resume_continues_them(tmp_path):
    """MultiStepLR's semantics from the step count alone: the step numbered m (0-based) and later run at
    lr * gamma per milestone reached; a resume gives the weights an uninterrupted run gives, even though the
    checkpoint's optimiser state holds the rate of the step it was saved at."""
    data = blobs(200)
    sched = replace(QUICK, lr=1e-2, lr_milestones=(4, 9), lr_gamma=0.5)
    whole, _ = make(tmp_path, data, replace(sched, steps=12))
    rates = []  # the rate of every group at each step, once the schedule has set it
    set_rates = whole._set_learning_rates
    whole._set_learning_rates = lambda: (set_rates(), rates.append(
        {g["lr"] for o in whole.optimizers.values() for g in o.param_groups}))
    whole.fit()
    assert [r.pop() for r in rates] == pytest.approx([1e-2] * 4 + [5e-3] * 5 + [2.5e-3] * 3)
    first, run = make(tmp_path, data, replace(sched, steps=6))
    first.fit()
    second = make_trainer(build_model(run.read_config()), data, run, replace(sched, steps=12), progress=False)
    second.resume()
    second.fit()
    assert torch.equal(params(whole.model), params(second.model))
    constant, _ = make(tmp_path, data, replace(QUICK, lr=1e-2, steps=12))
    constant.fit()
    assert not torch.equal(params(constant.model), params(whole.model))  # the schedule changed the training


def test_the_first_log_line_after_a_resume_averages_the_steps_it_saw(tmp_path):
    """Resumed at step 7 with log_every=5, the line at step 10 is the mean of steps 8-10 (3 steps), not their
    sum over 5: it matches the uninterrupted run's line, which averages steps 6-10 of the same training."""
    data = blobs(200)
    cfg = replace(QUICK, steps=10, log_every=5)
    whole, whole_run = make(tmp_path, data, cfg)
    whole.fit()
    first, run = make(tmp_path, data, replace(cfg, steps=7))
    first.fit()
    second = make_trainer(build_model(run.read_config()), data, run, cfg, progress=False)
    second.resume()
    second.fit()
    line = {r["step"]: r for r in read_jsonl(run.path / "stats.jsonl")}[10]
    reference = {r["step"]: r for r in read_jsonl(whole_run.path / "stats.jsonl")}[10]
    assert 0.8 < line["recon"] / reference["recon"] < 1.25


def test_every_record_line_carries_the_training_cpu_seconds_which_continue_across_a_resume(tmp_path):
    """stats and validation lines give ``cpu_time`` (this process's CPU seconds of training, the --cpu-time
    budget's clock): positive, rising, and carried on by a resume rather than restarted; it is not a metric."""
    from genlab.runs.logs import RECORD_FIELDS

    data = blobs(200)
    cfg = replace(QUICK, steps=10, log_every=5, eval_every=5)
    first, run = make(tmp_path, data, cfg)
    first.fit()
    before = [r["cpu_time"] for r in read_jsonl(run.path / "stats.jsonl")]
    second = make_trainer(build_model(run.read_config()), data, run, replace(cfg, steps=20), progress=False)
    second.resume()
    assert second.cpu_elapsed == first.cpu_elapsed > 0
    second.fit()
    stats = read_jsonl(run.path / "stats.jsonl")
    assert [r["step"] for r in stats] == [5, 10, 15, 20]
    cpu = [r["cpu_time"] for r in stats]
    assert cpu[:2] == before and cpu[0] > 0 and cpu == sorted(cpu) and cpu[2] >= cpu[1]
    validation = [r for r in read_jsonl(run.path / "metrics.jsonl") if r.get("split") == "val"]
    assert validation and all(r["cpu_time"] > 0 and r["time"] > 0 for r in validation)
    assert [r["cpu_time"] for r in validation] == sorted(r["cpu_time"] for r in validation)
    assert {"cpu_time", "time"} <= RECORD_FIELDS


def test_runs_are_numbered_and_hold_their_record(tmp_path):
    data = blobs(120)
    t, run = make(tmp_path, data, replace(QUICK, steps=10, sample_every=5))
    t.fit()
    assert run.path.name == "0001-vae-blobs"
    assert new_run(tmp_path, "vae", "blobs").path.name == "0002-vae-blobs"
    for f in ("config.json", "checkpoint.pt", "best.pt", "stats.jsonl", "metrics.jsonl", "curves.png"):
        assert (run.path / f).is_file(), f
    assert list((run.path / "tb").glob("events.out.tfevents*"))
    assert (run.path / "samples" / "step-0000005.png").is_file()
    assert [r["step"] for r in read_jsonl(run.stats)] == [5, 10]


def test_nan_stops_with_the_step_and_last_checkpoint(tmp_path):
    data = blobs(120)
    t, run = make(tmp_path, data, replace(QUICK, steps=50, checkpoint_every=4))
    real_loss = t.model.loss

    def poisoned(phase, batch, *, step=0):
        out = real_loss(phase, batch, step=step)
        return {**out, "loss": out["loss"] * float("nan")} if step == 6 else out

    t.model.loss = poisoned
    with pytest.raises(TrainingDiverged, match=r"step 6.*checkpoint\.pt \(step 4\)"):
        t.fit()
    assert load_checkpoint(run.checkpoint)["step"] == 4


def test_ctrl_c_saves_a_checkpoint(tmp_path):
    data = blobs(120)
    t, run = make(tmp_path, data, replace(QUICK, steps=100))
    real_loss = t.model.loss

    def interrupt(phase, batch, *, step=0):
        if step == 7:
            raise KeyboardInterrupt
        return real_loss(phase, batch, step=step)

    t.model.loss = interrupt
    result = t.fit()
    assert result.interrupted and load_checkpoint(run.checkpoint)["step"] == 7


def _slow_writer(path: str, started) -> None:
    """Child: rewrites the checkpoint with a payload whose write stalls half-way."""
    import genlab.runs.checkpoint as ck

    def stalling_fdopen(fd, mode):
        f = open(fd, mode, closefd=True)  # noqa: SIM115
        write = f.write

        def slow(b):
            write(b[: len(b) // 2])
            f.flush()
            started.set()
            time.sleep(60)
            return write(b[len(b) // 2:])

        f.write = slow
        return f

    ck.os.fdopen = stalling_fdopen  # this child process only
    save_checkpoint(Path(path), {"step": 2, "w": torch.ones(200_000)})


@pytest.mark.slow
def test_a_kill_while_writing_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "w": torch.zeros(200_000)})
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    child = ctx.Process(target=_slow_writer, args=(str(path), started))
    child.start()
    assert started.wait(60), "the child never started writing"
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.zeros(200_000))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.pt"]
    assert all(name.endswith(".tmp") for name in leftovers)  # a half-written temp file at most


@pytest.mark.slow
def test_trained_vae_beats_the_untrained_one_on_elbo(tmp_path):
    from genlab.data import load_data

    data = load_data("mnist5k")
    t, run = make(tmp_path, data, replace(QUICK, steps=300, batch_size=128, threads=1))
    x, _ = data.tensors("test", limit=300)
    x = t.model.eval_targets(x, torch.Generator().manual_seed(0))
    untrained = t.model.eval().elbo(x).mean().item()
    t.fit()
    trained = t.model.eval().elbo(x).mean().item()
    assert trained > untrained + 200, (untrained, trained)  # nats per image
    assert trained > -250  # measured: -549 untrained, -206 after 150 steps, -173 after 300


def test_ctrl_c_mid_step_finishes_the_step_then_saves(tmp_path):
    """SIGINT during a loss computation does not raise there: the step completes, then the run saves."""
    data = blobs(200)
    trainer, run = make(tmp_path, data, replace(QUICK, steps=1000))
    loss = trainer.model.loss

    def loss_with_ctrl_c(phase, batch, *, step=0):
        if trainer.step == 7:
            os.kill(os.getpid(), signal.SIGINT)  # delivered while this step's loss is being computed
        return loss(phase, batch, step=step)

    trainer.model.loss = loss_with_ctrl_c
    before = signal.getsignal(signal.SIGINT)
    result = trainer.fit()
    assert result.interrupted and result.step == 8  # step 7 ran to its end
    assert load_checkpoint(run.checkpoint)["step"] == 8
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is put back


def test_sigterm_stops_between_steps_and_saves(tmp_path):
    """kill / SLURM's preemption / torchrun's shutdown send SIGTERM: the step ends, the run saves."""
    data = blobs(200)
    trainer, run = make(tmp_path, data, replace(QUICK, steps=1000))
    loss = trainer.model.loss

    def loss_with_sigterm(phase, batch, *, step=0):
        if trainer.step == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss(phase, batch, step=step)

    trainer.model.loss = loss_with_sigterm
    before = signal.getsignal(signal.SIGTERM)
    result = trainer.fit()
    assert result.interrupted and result.step == 6
    assert load_checkpoint(run.checkpoint)["step"] == 6
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_cpu_time_budget_counts_this_process_cpu_not_wall_clock(tmp_path):
    trainer, _ = make(tmp_path, blobs(), train=replace(QUICK, cpu_time=0.5))
    cpu = time.process_time()
    result = trainer.fit()
    used = time.process_time() - cpu
    assert result.step > 0 and 0.5 <= used < 5.0


def test_select_metric_last_keeps_no_best_and_loads_the_last_weights(tmp_path):
    from genlab.runs import load_model

    data = blobs(120)
    t, run = make(tmp_path, data, replace(QUICK, steps=10, eval_every=5, select_metric="last"))
    t.fit()
    assert not (run.path / "best.pt").exists() and (run.path / "metrics.jsonl").is_file()
    model, _ = load_model(run, which="best")  # falls back to the last weights
    assert torch.equal(params(model), params(t.model))


def test_an_autoencoder_keeps_its_best_reconstruction_not_its_best_prior_samples(tmp_path):
    import genlab

    run = genlab.train("ae", data=blobs(120), steps=20, runs=tmp_path, progress=False, final=False,
                       overrides={"train.batch_size": 32, "train.eval_every": 5, "train.sample_every": 0,
                                  "model.latent_dim": 4, "model.hidden": (32,)})
    rows = [r for r in read_jsonl(run.path / "metrics.jsonl") if r.get("split") == "val"]
    assert {"recon_mse", "fd"} <= set(rows[0])  # both are measured
    best = torch.load(run.path / "best.pt", weights_only=True)["best"]
    assert best["metric"] == "recon_mse"
    assert best["value"] == min(r["recon_mse"] for r in rows)


@pytest.mark.parametrize("tolerance, kept_step", [(0.0, 4), (0.5, 8)])
def test_select_tolerance_keeps_the_latest_weights_near_the_best_until_the_metric_runs_away(tmp_path, tolerance,
                                                                                           kept_step):
    """FD (lower is better) at steps 2..10: 3.0, 2.5, 2.9, 3.6, 5.7. The best alone is step 4; with 50% tolerance
    (up to 3.75) the latest weights near it, step 8, and not step 10, where FD ran away."""
    from genlab.runs import load_model
    from genlab.training.trainer import Validation

    data = blobs(120)
    t, run = make(tmp_path, data, replace(QUICK, steps=10, eval_every=2, select_metric="fd",
                                                  select_tolerance=tolerance))
    scripted = iter([3.0, 2.5, 2.9, 3.6, 5.7, 5.7])  # the last: the final evaluation at step 10, if any
    weights = {}

    def validate(model):
        weights[t.step] = params(model).clone()
        return Validation({"fd": next(scripted)}, higher_is_better={"fd": False})

    t.validate = validate
    result = t.fit()
    assert result.best["step"] == kept_step and result.best["seen"] == 2.5
    model, _ = load_model(run, which="best")
    assert torch.equal(params(model), weights[kept_step])
    assert load_checkpoint(run.checkpoint)["best"]["step"] == kept_step  # resume continues the same record
