"""One trainer for every model: it runs the model's phases and knows nothing else about it.

Per step, each phase runs ``repeat`` times on fresh batches: loss -> backward -> (clip) -> step
-> ``after_step``. Around that loop: the budget (steps, epochs or wall-clock), a progress bar
with live loss, JSONL + TensorBoard logs, validation that picks ``best.pt``, pictures over training,
atomic checkpoints that resume exactly, Ctrl-C that saves, and a NaN guard. The trainer imports no
metric and draws no picture: validation (``validate(model) -> Validation``) and pictures
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
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data import DataSet
from ..data.loader import train_loader
from ..errors import TrainingDiverged
from ..models.base import GenerativeModel
from ..runs.checkpoint import load_checkpoint, save_checkpoint
from ..runs.folder import Run
from ..runs.logs import RunLogger, plot_curves
from . import distributed, speed

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    return distributed.device_for(name, distributed.current())


@dataclass
class Validation:
    """What a validation callable returns: metric values, their real-vs-real floors (logged beside them)
    and, per metric, whether higher is better (for picking ``best.pt``)."""

    values: dict[str, float]
    floor: dict = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)


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
    last weights are the run's) and ``snapshot`` (None: no pictures) as in the module docstring."""

    def __init__(self, model: GenerativeModel, data: DataSet, run: Run, config: TrainConfig, *,
                 validate: Validate | None = None, snapshot: Snapshot | None = None, progress: bool = True):
        self.model, self.data, self.run, self.cfg = model, data, run, config
        self.validate, self.snapshot = validate, snapshot
        self.world = distributed.current()
        self.progress = progress and self.world.main
        self.device = distributed.device_for(config.device, self.world)
        if config.threads:
            torch.set_num_threads(config.threads)
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
        self.step, self.elapsed = 0, 0.0
        self.best: dict | None = None
        self.last_checkpoint_step: int | None = None
        self.logger = RunLogger(run.path) if self.world.main else _NoLogger()
        # fixed latents for the "samples over training" grids, so the frames are comparable
        self._sample_generator_seed = config.seed + 12345

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "step": self.step,
            "elapsed": self.elapsed,
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
        self.loader.load_state_dict(state["loader"])
        distributed.restore_rng(state, self.world, seed=self.cfg.seed, step=self.step)
        self.best = state.get("best") or None
        self.last_checkpoint_step = self.step

    def resume(self) -> None:
        self.load_state_dict(load_checkpoint(self.run.checkpoint))
        log.info("resumed %s at step %d", self.run.path, self.step)

    def save(self) -> None:
        """Every rank calls it (the RNG states are gathered); rank 0 writes."""
        state = self.state_dict()
        if self.world.main:
            save_checkpoint(self.run.checkpoint, state)
        self.last_checkpoint_step = self.step

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

    def train_step(self) -> dict[str, float]:
        if self._runners is None:
            self._build_runners()
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
        where = (f"last good checkpoint: {self.run.checkpoint} (step {self.last_checkpoint_step})"
                 if self.last_checkpoint_step is not None else "no checkpoint was written before it")
        return f"training stopped: the {phase} loss became {value} at step {self.step}; {where}"

    def fit(self) -> TrainResult:
        target = self.target_steps()
        if target is None and self.cfg.time is None and self.cfg.cpu_time is None:
            target = 10 * self.loader.steps_per_epoch  # no budget given: 10 epochs
        self._batches = iter(self.loader)
        interrupted = False
        # disable=None: a bar on a terminal, none in a log file (no carriage-return spam)
        bar = tqdm(total=target, initial=self.step, disable=None if self.progress else True, unit="step",
                   dynamic_ncols=True, desc=self.run.path.name)
        stop = _StopOnSigint()  # Ctrl-C ends the step in progress, then saves (no exception mid-step)
        try:
            with speed.flush_denormals(self.cfg.flush_denormal, self.device):
                self._loop(target, stop, bar)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted at step %d: saving a checkpoint", self.step)
        finally:
            stop.restore()
            bar.close()
        if self.world.main and not interrupted and (self.best is None or self.best.get("step") != self.step):
            self.evaluate(None)
        self.save()  # every rank (the RNG states are gathered); rank 0 writes
        if self.world.main:
            self.save_sample_grid()
            plot_curves(self.run.path)
        self.logger.close()
        self._runners = None  # release the DDP wrappers (and their hold on the process group)
        epochs = self.step / self.loader.steps_per_epoch  # passes over the train split, fractional
        return TrainResult(self.step, epochs, self.elapsed, interrupted, self.best)

    def _loop(self, target: int | None, stop: _StopOnSigint, bar) -> None:
        """Steps until the target step or a time budget; logs, evaluates, samples and checkpoints on
        their schedules. Raises KeyboardInterrupt on Ctrl-C (on any rank, under torchrun)."""
        time_limit, cpu_limit = self.cfg.time, self.cfg.cpu_time
        start, start_elapsed, cpu_start = time.perf_counter(), self.elapsed, time.process_time()
        running: dict[str, float] = {}
        while target is None or self.step < target:
            time_up = ((time_limit is not None and time.perf_counter() - start >= time_limit)
                       or (cpu_limit is not None and time.process_time() - cpu_start >= cpu_limit))
            if self.world.distributed:  # every rank stops at the same step, or none does
                code = 2 * stop.requested + time_up
                code = distributed.max_across(code, self.world)
                time_up, stop.requested = bool(code & 1), bool(code & 2)
            if stop.requested:
                raise KeyboardInterrupt
            if time_up:
                break
            values = self.train_step()
            for k, v in values.items():
                running[k] = running.get(k, 0.0) + v
            self.elapsed = start_elapsed + time.perf_counter() - start
            bar.update(1)
            if self.step % self.cfg.log_every == 0:
                means = {k: float(v) / self.cfg.log_every for k, v in running.items()}
                means = distributed.mean_across(means, self.world)  # the same on every rank
                running = {}
                self.logger.write("stats.jsonl", self.step, means, epoch=self.loader.epoch,
                                  time=round(self.elapsed, 2))
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:4]}, refresh=False)
            if self.cfg.eval_every and self.step % self.cfg.eval_every == 0 and self.world.main:
                self.evaluate(bar)
            if self.cfg.sample_every and self.step % self.cfg.sample_every == 0 and self.world.main:
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

    def evaluate(self, bar) -> dict[str, float]:
        """Validation metrics; the selection metric's best value keeps its weights in best.pt."""
        if self.validate is None:
            return {}
        # evaluation draws its own random numbers: fork the RNG so training is unaffected by it
        with torch.random.fork_rng(devices=[]):
            result = self.validate(self.model)
        self.model.train()
        values = result.values
        self.logger.write("metrics.jsonl", self.step, values, split="val", floor=result.floor)
        if values:
            line = f"step {self.step}: " + "  ".join(f"{k} {v:.4g}" for k, v in values.items())
            bar.write(line) if bar is not None and self.progress else log.info(line)
        key = self._selection_metric(values)
        if key is not None:
            sign = 1 if result.higher_is_better.get(key, False) else -1
            value = values[key]
            if self.best is None or sign * value > sign * self.best["value"]:
                self.best = {"metric": key, "value": value, "step": self.step}
                save_checkpoint(self.run.best, {"model": self.model.state_dict(), "best": self.best})
        return values

    def save_sample_grid(self) -> Path | None:
        """The pictures of this step (``snapshot``) in the run's ``samples/`` folder."""
        if self.snapshot is None:
            return None
        folder = self.run.path / "samples"
        folder.mkdir(exist_ok=True)
        result = self.snapshot(self.model, folder, self.step)
        self.model.train()
        return result


class _StopOnSigint:
    """While training, SIGINT (Ctrl-C) and SIGTERM (``kill``, SLURM's preemption, torchrun's shutdown)
    set a flag that the loop reads between steps, instead of raising wherever the main thread happens
    to be: an exception inside a library's locked region (e.g. TensorBoard's event queue) can leave a
    lock held and hang the final save. Under torchrun all ranks then stop at the same step and save.
    A second signal raises at once. Only the main thread can install signal handlers; elsewhere this
    does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous: dict = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}


class _NoLogger:
    """What ranks other than 0 log to: nothing."""

    def write(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass
