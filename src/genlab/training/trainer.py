"""One trainer for every model: it runs the model's phases and knows nothing else about it.

Per step, each phase runs ``repeat`` times on fresh batches: loss -> backward -> (clip) -> step
-> ``after_step``. Around that loop: the budget (steps, epochs or wall-clock), a progress bar
with live loss, JSONL + TensorBoard logs, validation that picks ``best.pt``, pictures over training,
atomic checkpoints that resume exactly, stop signals that save (``genlab.training.signals``), and a NaN
guard. The run is saved before anything that could fail after training (the final validation and
pictures); a full disk stops training with one line naming the last good checkpoint. The trainer
imports no metric and draws no picture: validation (``validate(model) -> Validation``) and pictures
(``snapshot(model, folder, step)``) come in as callables (``genlab.api.training.make_trainer`` wires
the evaluation and the sample grids).

Under torchrun the same loop runs in every process (``genlab.training.distributed``): each phase's
forward pass goes through its own DDP wrapper, rank 0 alone writes, and the ranks stop together.
While a phase runs, the parameters of the other phases are frozen (no gradient is computed for
weights that phase's optimiser does not step: a GAN's generator phase skips D's weight gradients).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data import DataSet
from ..data.loader import train_loader
from ..errors import DiskFull, TrainingDiverged
from ..models.base import GenerativeModel
from ..runs.checkpoint import disk_full, load_checkpoint, remove_partial_writes, save_checkpoint
from ..runs.folder import Run
from ..runs.logs import RunLogger, plot_curves
from . import distributed, speed
from .signals import StopSignals
from .threads import thread_tuner

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    return distributed.device_for(name, distributed.current())


def keeps_weights(value: float, seen: float | None, *, higher: bool, tolerance: float) -> tuple[bool, float]:
    """The selection rule of best.pt at one validation: (keep these weights, the best value seen so far).
    Kept when ``value`` improves on ``seen``, or with ``tolerance`` > 0 when it is within that fraction of it."""
    sign = 1 if higher else -1
    improved = seen is None or sign * value > sign * seen
    within = seen is not None and tolerance > 0 and sign * value >= sign * seen - tolerance * abs(seen)
    return improved or within, value if improved else seen


@dataclass
class Validation:
    """What a validation callable returns: metric values, their real-vs-real floors (logged beside them),
    per metric whether higher is better (for picking ``best.pt``), and the metrics the data set was too
    small for, with the reason ({name: "needs at least 2 items, ..."}), logged beside the values."""

    values: dict[str, float]
    floor: dict = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


Validate = Callable[[GenerativeModel], Validation]
Snapshot = Callable[[GenerativeModel, Path, int], object]


@dataclass
class TrainResult:
    step: int
    epochs: float
    seconds: float
    interrupted: bool
    best: dict | None


class Trainer:
    """Trains ``model`` on ``data`` into ``run`` under ``config``; ``validate`` (None: no validation, the
    last weights are the run's) and ``snapshot`` (None: no pictures) as in the module docstring.
    ``stop``: the caller's ``StopSignals`` when one should cover more than ``fit`` (the CLI's covers
    the trainer's construction and the final report too); ``fit`` installs it for its duration."""

    def __init__(self, model: GenerativeModel, data: DataSet, run: Run, config: TrainConfig, *,
                 validate: Validate | None = None, snapshot: Snapshot | None = None, progress: bool = True,
                 stop: StopSignals | None = None):
        self.model, self.data, self.run, self.cfg = model, data, run, config
        self.validate, self.snapshot = validate, snapshot
        self.stop = stop if stop is not None else StopSignals()
        self.world = distributed.current()
        self.progress = progress and self.world.main
        self.device = distributed.device_for(config.device, self.world)
        self.threads = thread_tuner(config.threads, self.device, self.world.distributed)  # None: fixed
        torch.manual_seed(distributed.rank_seed(config.seed, self.world.rank))
        self.model = model = distributed.sync_batchnorm(model, self.world, config.sync_batchnorm)
        self.nhwc = speed.channels_last(config.memory_format, model)
        self.model.to(self.device, **({"memory_format": torch.channels_last} if self.nhwc else {}))
        model.prepare(data)  # e.g. a frozen feature network trained on this data set
        self.phases = model.phases()
        self.autocast = speed.autocast_dtype(config.precision, self.device)
        self._runners: dict | None = None  # built at fit(), after a resume has loaded the weights
        self._cpu = self.device.type == "cpu"
        self.eval_metrics = (config.eval_metrics if config.eval_metrics is not None
                             else model.default_eval_metrics)
        self.optimizers = {p.name: p.make_optimizer(config.lr) for p in self.phases}
        # a model with a ``batch_plan`` trains on batches in which one factor varies (``data.factors``)
        self.loader = train_loader(data, model.batch_plan, batch_size=config.batch_size,
                                   seed=config.seed, rank=self.world.rank, world_size=self.world.size)
        # training time so far, across resumes: wall seconds and this process's CPU seconds (the budget
        # of --cpu-time, validation included), logged beside every stats and validation line
        self.step, self.elapsed, self.cpu_elapsed = 0, 0.0, 0.0
        self.best: dict | None = None
        self.last_checkpoint_step: int | None = None
        self.logger = RunLogger(run.path) if self.world.main else _NoLogger()

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "step": self.step,
            "elapsed": self.elapsed,
            "cpu_elapsed": self.cpu_elapsed,
            "loader": self.loader.state_dict(),
            "rng": torch.get_rng_state(),
            "rng_ranks": distributed.rng_states(self.world),  # one per rank (collective)
            "best": self.best or {},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.cpu_elapsed = float(state.get("cpu_elapsed", 0.0))  # absent from checkpoints of earlier versions
        self.loader.load_state_dict(state["loader"])
        distributed.restore_rng(state, self.world, seed=self.cfg.seed, step=self.step)
        self.best = state.get("best") or None
        self.last_checkpoint_step = self.step

    def resume(self) -> None:
        if self.world.main:
            for leftover in (*remove_partial_writes(self.run.checkpoint), *remove_partial_writes(self.run.best)):
                log.info("removed %s, left by a write that was killed", leftover.name)
        self.load_state_dict(load_checkpoint(self.run.checkpoint))
        log.info("resumed %s at step %d", self.run.path, self.step)

    def save(self) -> dict:
        """Every rank calls it (the RNG states are gathered); rank 0 writes. Returns the state saved."""
        state = self.state_dict()
        if self.world.main:
            self.stop.pause_point("save")
            self._write(self.run.checkpoint, state)
        self.last_checkpoint_step = self.step
        return state

    def _write(self, path: Path, state: dict) -> None:
        with self.stop.protected():  # a stop signal waits for the end of the write
            save_checkpoint(path, state)

    def _after_disk_full(self) -> str:
        if self.last_checkpoint_step is None:
            return "no checkpoint was written: free some space and start the run again"
        return f"{self._last_good()}: free some space, then continue it with --resume {self.run.path}"

    def _last_good(self) -> str:
        return (f"the last good checkpoint is {self.run.checkpoint} (step {self.last_checkpoint_step})"
                if self.last_checkpoint_step is not None else "no checkpoint was written before it")

    # --- budget --------------------------------------------------------------------------------
    def target_steps(self) -> int | None:
        c = self.cfg
        targets = []
        if c.steps is not None:
            targets.append(c.steps)
        if c.epochs is not None:
            targets.append(math.ceil(c.epochs * self.loader.steps_per_epoch))
        return min(targets) if targets else None

    # --- the loop ------------------------------------------------------------------------------
    def _build_runners(self) -> None:
        """Each phase's forward: through DDP when distributed, compiled when asked; and the trainable
        parameters of the other phases, frozen while it runs."""
        runners = distributed.phase_runners(self.model, self.phases, self.world, self.device)
        self._runners = {name: speed.maybe_compile(fn, name, self.cfg.compile) for name, fn in runners.items()}
        mine = {p.name: {id(q) for q in p.parameters()} for p in self.phases}
        trainable = [q for p in self.phases for q in p.parameters() if q.requires_grad]
        unique = list({id(q): q for q in trainable}.values())
        self._others = {name: [q for q in unique if id(q) not in ids] for name, ids in mine.items()}
        # backward computes gradients for these alone: nothing for inputs that require grad (WGAN-GP's
        # interpolates: a (N, in) x (in, F) product a step spent on a gradient nobody reads)
        self._own = {name: [q for q in unique if id(q) in ids] for name, ids in mine.items()}

    def _set_learning_rates(self) -> None:
        """Every group's rate for the step about to run: its rate before any milestone (``initial_lr``, kept in
        the group as torch's LR schedulers keep it, so it is saved with the optimiser) times lr_gamma per
        milestone reached. A function of the step alone: a resume continues the schedule exactly, and may
        change it (``--resume ... --set train.lr_milestones=...``)."""
        factor = self.cfg.lr_gamma ** sum(m <= self.step for m in self.cfg.lr_milestones)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor

    def train_step(self) -> dict[str, float]:
        if self._runners is None:
            self._build_runners()
        self._set_learning_rates()
        self.model.train()
        logged: dict[str, float] = {}
        for phase in self.phases:
            frozen = self._others[phase.name]
            for q in frozen:
                q.requires_grad_(False)
            try:
                out = self._run_phase(phase)
            finally:
                for q in frozen:
                    q.requires_grad_(True)
            prefix = "" if len(self.phases) == 1 else f"{phase.name}/"
            # CPU: a float now is cheapest; GPU: keep tensors (no sync per step), read at log time
            logged.update({prefix + k: (v.detach().item() if self._cpu else v.detach()) for k, v in out.items()})
        self.step += 1
        return logged

    def _run_phase(self, phase) -> dict:
        """``phase.repeat`` optimiser steps of one phase, each on a fresh batch; the last loss dict."""
        opt, run = self.optimizers[phase.name], self._runners[phase.name]
        for _ in range(phase.repeat):
            batch = speed.to_device(next(self._batches), self.device, self.nhwc)
            try:
                out = self._forward_backward(phase, run, opt, batch)
            except RuntimeError as err:  # a compiled phase whose backward cannot run compiled
                if not speed.can_fall_back(run, err):
                    raise
                out = self._forward_backward(phase, run, opt, batch)  # eagerly, the same batch
            speed.proven(run)
            self.stop.pause_point("mid-step")  # gradients computed, the optimiser step not yet taken
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.cfg.grad_clip)
            opt.step()
            if phase.after_step is not None:
                phase.after_step()
        return out

    def _forward_backward(self, phase, run, opt, batch) -> dict:
        with speed.autocast(self.autocast, self.device):
            out = run(batch, self.step)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise TrainingDiverged(self._diverged_message(phase.name, loss.detach().item()))
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=self._own[phase.name])
        return out

    def _diverged_message(self, phase: str, value: float) -> str:
        return f"training stopped: the {phase} loss became {value} at step {self.step}; {self._last_good()}"

    def fit(self) -> TrainResult:
        """Train to the budget, save, then (rank 0) the final validation metrics, a sample grid and the
        curves. A stop signal at any moment leaves the latest state saved (``result.interrupted`` when
        it ended the training itself); a full disk raises DiskFull naming the last good checkpoint."""
        target = self.target_steps()
        if target is None and self.cfg.time is None and self.cfg.cpu_time is None:
            target = 10 * self.loader.steps_per_epoch  # no budget given: 10 epochs
        self._batches = iter(self.loader)
        try:
            with self.stop:
                interrupted = self._train_to(target)
                state = self.save()  # every rank (the RNG states are gathered); rank 0 writes
                if self.world.main:
                    self._finish(state)
                self.logger.close()
        except DiskFull as err:  # a checkpoint write: name the one that is still good
            raise DiskFull(f"{err}; {self._after_disk_full()}") from None
        except OSError as err:  # the disk filled up under a log line or a picture
            if not disk_full(err):
                raise
            raise DiskFull(f"the disk is full: could not write {err.filename} ({err.strerror}); "
                           f"{self._after_disk_full()}") from None
        self._runners = None  # release the DDP wrappers (and their hold on the process group)
        epochs = self.step / self.loader.steps_per_epoch  # passes over the train split, fractional
        return TrainResult(self.step, epochs, self.elapsed, interrupted, self.best)

    def _train_to(self, target: int | None) -> bool:
        """The loop with its progress bar; True when a stop signal ended it."""
        # disable=None: a bar on a terminal, none in a log file (no carriage-return spam)
        bar = tqdm(total=target, initial=self.step, disable=None if self.progress else True, unit="step",
                   dynamic_ncols=True, desc=self.run.path.name)
        try:
            self.stop.pause_point("before-first-step")
            with speed.flush_denormals(self.cfg.flush_denormal, self.device):
                self._loop(target, bar)
            return False
        except KeyboardInterrupt:
            log.warning("stopped at step %d: saving a checkpoint", self.step)
            return True
        finally:
            bar.close()

    def _finish(self, saved: dict) -> None:
        """After the last save: the final validation metrics (rewriting the checkpoint's record of the
        best when they pick new weights), a sample grid and the curves. A stop signal drops what
        remains, at once: the run is saved."""
        try:
            with self.stop.abortable():
                if self.best is None or self.best.get("step") != self.step:
                    self.stop.pause_point("final-evaluation")
                    self.evaluate(None, saved=saved)
                self.stop.pause_point("pictures")
                self.save_sample_grid()
                with self.stop.protected():
                    plot_curves(self.run.path)
        except KeyboardInterrupt:
            log.warning("stopped: the final validation and pictures are skipped; the run is saved")

    def _loop(self, target: int | None, bar) -> None:
        """Steps until the target step or a time budget; logs, evaluates, samples and checkpoints on
        their schedules. Raises KeyboardInterrupt at a stop signal (on any rank, under torchrun)."""
        time_limit, cpu_limit = self.cfg.time, self.cfg.cpu_time
        start, start_elapsed, cpu_start = time.perf_counter(), self.elapsed, time.process_time()
        start_cpu_elapsed = self.cpu_elapsed
        # per quantity: its sum and the steps that logged it (fewer than log_every on the first line after a
        # resume, or for a term taken on some steps only, such as a lazy R1 penalty)
        running: dict[str, float] = {}
        counted: dict[str, int] = {}
        # evaluations and pictures hold no unsaved state: a signal drops them at once, except under
        # torchrun, where rank 0 would leave the others waiting at the next collective (a second does)
        abort_at = 2 if self.world.distributed else 1
        while target is None or self.step < target:
            time_up = ((time_limit is not None and time.perf_counter() - start >= time_limit)
                       or (cpu_limit is not None and time.process_time() - cpu_start >= cpu_limit))
            stopping = self.stop.requested
            if self.world.distributed:  # every rank stops at the same step, or none does
                code = distributed.max_across(2 * stopping + time_up, self.world)
                time_up, stopping = bool(code & 1), bool(code & 2)
            if stopping:
                raise KeyboardInterrupt
            if time_up:
                break
            if self.threads is not None:
                self.threads.before_step()
            began = time.perf_counter()
            values = self.train_step()
            if self.threads is not None:
                self.threads.after_step(time.perf_counter() - began)
            for k, v in values.items():
                running[k] = running.get(k, 0.0) + v
                counted[k] = counted.get(k, 0) + 1
            self.elapsed = start_elapsed + time.perf_counter() - start
            self.cpu_elapsed = start_cpu_elapsed + time.process_time() - cpu_start
            bar.update(1)
            if self.step % self.cfg.log_every == 0:
                means = {k: float(v) / counted[k] for k, v in running.items()}
                means = distributed.mean_across(means, self.world)  # the same on every rank
                running, counted = {}, {}
                threads = {"threads": torch.get_num_threads()} if self.threads is not None else {}
                self.logger.write("stats.jsonl", self.step, means, epoch=self.loader.epoch,
                                  time=round(self.elapsed, 2), cpu_time=round(self.cpu_elapsed, 2), **threads)
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:4]}, refresh=False)
            if self.cfg.eval_every and self.step % self.cfg.eval_every == 0 and self.world.main:
                with self.stop.abortable(at=abort_at):
                    self.stop.pause_point("validation")
                    self.evaluate(bar)
            if self.cfg.sample_every and self.step % self.cfg.sample_every == 0 and self.world.main:
                with self.stop.abortable(at=abort_at):
                    self.save_sample_grid()
            if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                self.save()

    # --- evaluation and pictures ---------------------------------------------------------------
    def _selection_metric(self, values: dict[str, float]) -> str | None:
        choice = self.cfg.select_metric
        if choice == "last":  # no selection: the last weights are the run's
            return None
        if choice != "auto":
            return choice if choice in values else None
        return next((m for m in self.eval_metrics if m in values), None)

    def evaluate(self, bar, *, saved: dict | None = None) -> dict[str, float]:
        """Validation metrics; the selection metric's best value keeps its weights in best.pt.
        ``saved``: the state just saved at this step, whose checkpoint then records a new best too."""
        if self.validate is None:
            return {}
        # evaluation draws its own random numbers: fork the RNG so training is unaffected by it
        with torch.random.fork_rng(devices=[]):
            result = self.validate(self.model)
        self.model.train()
        values = result.values
        with self.stop.protected():
            self.logger.write("metrics.jsonl", self.step, values, split="val", time=round(self.elapsed, 2),
                              cpu_time=round(self.cpu_elapsed, 2), floor=result.floor,
                              **({"skipped": result.skipped} if result.skipped else {}))
        if values or result.skipped:
            line = "  ".join([f"step {self.step}:", *(f"{k} {v:.4g}" for k, v in values.items()),
                              *(f"(skipped {k}: {why})" for k, why in result.skipped.items())])
            bar.write(line) if bar is not None and self.progress else log.info(line)
        key = self._selection_metric(values)
        if key is not None:
            value = values[key]
            # "seen": the best value so far; best.pt holds the latest weights within select_tolerance of it
            seen = None if self.best is None else self.best.get("seen", self.best["value"])
            keep, seen = keeps_weights(value, seen, higher=result.higher_is_better.get(key, False),
                                       tolerance=self.cfg.select_tolerance)
            if keep:
                with self.stop.protected():  # best.pt and the records of it change together
                    self.best = {"metric": key, "value": value, "step": self.step, "seen": seen}
                    self._write(self.run.best, {"model": self.model.state_dict(), "best": self.best})
                    if saved is not None:
                        self._write(self.run.checkpoint, {**saved, "best": self.best})
        return values

    def save_sample_grid(self) -> Path | None:
        """The pictures of this step (``snapshot``) in the run's ``samples/`` folder."""
        if self.snapshot is None:
            return None
        folder = self.run.path / "samples"
        folder.mkdir(exist_ok=True)
        with self.stop.protected():  # no half-written PNG for the explorer to trip on
            result = self.snapshot(self.model, folder, self.step)
        self.model.train()
        return result


class _NoLogger:
    """What ranks other than 0 log to: nothing."""

    def write(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass
