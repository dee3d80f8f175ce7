"""Nothing lost: a small data set of the user's own images trains and saves; a stop signal at any
stage of ``genlab train`` leaves the latest state on disk; a full disk says so in one line."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genlab.nn.features as features_mod
import genlab.training.signals as signals
from genlab.cli import main
from genlab.runs import load_checkpoint
from genlab.runs.logs import read_jsonl
from genlab.training.signals import PAUSE_AT, PAUSE_SIGNALS, StopSignals

from conftest import blobs

TINY = ["--set", "model.hidden=32", "--set", "model.latent_dim=2", "--set", "train.batch_size=16"]


def _images(folder, n: int, make) -> str:
    """n images made by ``make(rng) -> PIL image`` into ``folder``; the data spec."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = make(rng)
        img.save(folder / f"{i:03d}.{'gif' if img.mode == 'P' else 'tif' if img.mode == 'CMYK' else 'png'}")
    return f"folder:{folder}"


def _grey(rng) -> Image.Image:
    return Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8))


def _rgb(rng) -> Image.Image:
    return Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8))


SETS = {  # name: (items, their maker, Pillow mode)
    "grey-20": (20, _grey, "L"),
    "grey-40": (40, _grey, "L"),
    "grey-100": (100, _grey, "L"),
    "16-bit-10": (10, lambda rng: Image.fromarray((rng.random((12, 12)) * 65535).astype(np.uint16)), "I;16"),
    "cmyk-10": (10, lambda rng: _rgb(rng).convert("CMYK"), "CMYK"),
    "rgba-10": (10, lambda rng: Image.fromarray((rng.random((12, 12, 4)) * 255).astype(np.uint8), "RGBA"), "RGBA"),
    "gif-10": (10, lambda rng: _rgb(rng).convert("P"), "P"),
}
#: test-split items of a user set (90/5/5, at least one each) and the minimum of each sample metric
TEST_ITEMS = {10: 1, 20: 1, 40: 2, 100: 5}
NEEDS = {"fd": 2, "kid": 2, "precision": 4, "recall": 4, "density": 6, "coverage": 6}


def _idx(path, n: int) -> str:
    pixels = (np.random.default_rng(0).random((n, 12, 12)) * 255).astype(np.uint8)
    path.write_bytes(struct.pack(">IIII", 0x803, n, 12, 12) + pixels.tobytes())
    return f"idx:{path}"


@pytest.mark.parametrize("name", [*SETS, "idx-20"])
def test_a_small_data_set_trains_saves_and_reports_the_metrics_it_cannot_compute(tmp_path, name, capsys,
                                                                                  monkeypatch):
    """20 of the user's own photos hold one test image: FD cannot be computed on it. The run still
    trains, saves its checkpoint and reports FD as skipped with the minimum it needs."""
    monkeypatch.setattr(features_mod, "MIN_STEPS", 5)  # the feature net's quality is not under test
    if name == "idx-20":
        n, spec = 20, _idx(tmp_path / "small-images-idx3-ubyte", 20)
    else:
        n, make, mode = SETS[name]
        spec = _images(tmp_path / name, n, make)
        assert Image.open(next((tmp_path / name).iterdir())).mode == mode  # the format under test
    runs = tmp_path / "runs"
    assert main(["-q", "train", "vae", "--data", spec, "--steps", "6", "--runs", str(runs), *TINY]) == 0
    out = capsys.readouterr().out
    (run,) = runs.iterdir()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 6
    skipped = json.loads((run / "metrics.json").read_text())["info"]["skipped"]
    items = TEST_ITEMS[n]
    for metric, minimum in NEEDS.items():
        if items < minimum:
            reason = f"needs at least {minimum} items, the test split gives {items}"
            assert skipped[metric] == reason and f"skipped {metric}: {reason}" in out
    (validation,) = read_jsonl(run / "metrics.jsonl")  # the final validation: val has as few items
    assert "elbo" in validation and "recon_mse" in validation
    if items < 2:
        assert validation["skipped"]["fd"] == "needs at least 2 items, the val split gives 1"
    else:
        assert "fd" in validation


# --- stop signals at every stage -----------------------------------------------------------------
SIGNAL_RUN = ["--data", "digits", "--steps", "5", *TINY, "--set", "train.eval_every=3", "--set",
              "train.eval_metrics=elbo", "--set", "train.sample_every=0", "--set", "train.checkpoint_every=0",
              "--set", "train.log_every=1"]


def _train_and_signal(tmp_path, stage: str, signals: tuple[int, ...]) -> tuple[int, str, str, Path]:
    """``genlab train`` in a child held at ``stage`` (its pause point) until the signals arrive, sent
    one after another once the child has seen the previous one: (exit code, stdout, stderr, run)."""
    env = {**os.environ, PAUSE_AT: stage, PAUSE_SIGNALS: str(len(signals))}
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "genlab", "-q", "train", "vae", "--runs", str(runs),
                             *SIGNAL_RUN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    try:
        for k, sig in enumerate(signals):
            wanted = f"genlab-test: paused at {stage.split('@')[0]}" if k == 0 else \
                f"genlab-test: signal {k} at {stage.split('@')[0]}"
            while (line := proc.stderr.readline()) and line.strip() != wanted:
                seen.append(line)
            assert line, f"the child never reached {wanted!r}: {''.join(seen)[-2000:]}"
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    (run,) = runs.iterdir()
    return proc.returncode, out, "".join(seen) + err, run


def _resumes(run: Path, step: int) -> None:
    """The checkpoint holds ``step`` and the run continues from it."""
    assert load_checkpoint(run / "checkpoint.pt")["step"] == step
    assert main(["-q", "train", "vae", "--resume", str(run), "--steps", str(step + 2), "--no-final"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == step + 2


INT, TERM = signal.SIGINT, signal.SIGTERM


@pytest.mark.parametrize(("stage", "signals", "step", "code"), [
    ("setup", (TERM,), 0, 0),  # the model and the trainer being built: it saves at step 0 once they are
    ("before-first-step", (INT,), 0, 0),
    ("mid-step@4", (TERM,), 4, 0),  # during the 4th step: it ends, then the run saves
    ("validation", (INT,), 3, 0),  # the evaluation at step 3 is dropped at once
    ("final-evaluation", (TERM,), 5, 0),  # the case: SIGTERM killed it, SIGINT gave 130, no checkpoint
    ("pictures", (INT,), 5, 0),
    ("final-report", (TERM,), 5, 0),
    ("save", (INT,), 5, 0),  # the final save finishes first
    ("save", (TERM, INT), 5, 130),  # a second signal: saved all the same, exit 130
])
@pytest.mark.slow
def test_a_stop_signal_at_any_stage_saves_the_latest_state(tmp_path, stage, signals, step, code):
    returncode, out, err, run = _train_and_signal(tmp_path, stage, signals)
    assert returncode == code, (out, err)
    assert "Traceback" not in err
    _resumes(run, step)
    if stage in ("final-evaluation", "pictures", "final-report", "save"):  # training had reached its target
        assert "finished at step 5" in out and "the final report is skipped" in out
        assert not (run / "metrics.json").exists()
    else:
        assert f"interrupted at step {step}" in out


# --- a full disk ---------------------------------------------------------------------------------
QUICK_RUN = ["--data", "digits", *TINY, "--set", "train.eval_metrics=elbo", "--set", "train.sample_every=0",
             "--no-final"]


def _fill_the_disk_at_checkpoint_write(monkeypatch, after: int) -> None:
    """Writes of checkpoint.pt's temp file fail with ENOSPC half-way, from the ``after``+1-th on."""
    real_fdopen, writes = os.fdopen, []

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".checkpoint.pt."):
            writes.append(fd)
            if len(writes) > after:
                real_write = f.write

                def write(data):
                    real_write(data[: len(data) // 2])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                f.write = write
        return f

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_a_full_disk_names_the_last_good_checkpoint_in_one_line(tmp_path, monkeypatch, capsys):
    _fill_the_disk_at_checkpoint_write(monkeypatch, after=1)  # step 3 is written, the final save (6) is not
    runs = tmp_path / "runs"
    code = main(["-q", "train", "vae", "--steps", "6", "--set", "train.checkpoint_every=3", "--runs", str(runs),
                 *QUICK_RUN])
    err = capsys.readouterr().err
    (run,) = runs.iterdir()
    assert code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("genlab: error:")]
    assert line.startswith(f"genlab: error: the disk is full: could not write {run / 'checkpoint.pt'}")
    assert f"the last good checkpoint is {run / 'checkpoint.pt'} (step 3)" in line and "--resume" in line
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 3
    assert not list(run.glob(".*.tmp"))


def test_a_disk_full_before_any_checkpoint_says_none_was_written(tmp_path, monkeypatch, capsys):
    _fill_the_disk_at_checkpoint_write(monkeypatch, after=0)
    runs = tmp_path / "runs"
    assert main(["-q", "train", "vae", "--steps", "2", "--runs", str(runs), *QUICK_RUN]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "the disk is full" in err and "no checkpoint was written" in err


def test_a_full_disk_under_a_log_line_is_one_line_too(tmp_path, monkeypatch, capsys):
    from genlab.runs.logs import RunLogger

    real_write = RunLogger.write

    def write(self, file, step, values, **extra):
        if file == "stats.jsonl" and step >= 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.folder / file))
        return real_write(self, file, step, values, **extra)

    monkeypatch.setattr(RunLogger, "write", write)
    runs = tmp_path / "runs"
    assert main(["-q", "train", "vae", "--steps", "6", "--set", "train.log_every=1", "--set",
                 "train.checkpoint_every=2", "--runs", str(runs), *QUICK_RUN]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "the disk is full: could not write" in err and "stats.jsonl" in err
    assert "(step 2)" in err


def test_resume_removes_the_temp_files_of_killed_checkpoint_writes(tmp_path, caplog):
    runs = tmp_path / "runs"
    assert main(["-q", "train", "vae", "--steps", "2", "--runs", str(runs), *QUICK_RUN]) == 0
    (run,) = runs.iterdir()
    leftovers = [run / ".checkpoint.pt.k3x_9a2q.tmp", run / ".best.pt.0abcdefg.tmp"]
    others = [run / ".checkpoint.pt.notmkstemp.tmp", run / "notes.tmp", run / ".config.json.k3x_9a2q.tmp"]
    for f in leftovers + others:
        f.write_bytes(b"half a checkpoint")
    caplog.set_level(logging.INFO)
    assert main(["train", "vae", "--resume", str(run), "--steps", "3", "--no-final"]) == 0
    assert not any(f.exists() for f in leftovers) and all(f.exists() for f in others)
    assert "removed .checkpoint.pt.k3x_9a2q.tmp, left by a write that was killed" in caplog.text


def test_the_checkpoint_records_the_best_the_final_evaluation_picks(tmp_path):
    """The run is saved before the final evaluation; when that evaluation picks new best weights the
    checkpoint's record of the best follows, so a resumed run compares against the right value."""
    runs = tmp_path / "runs"
    assert main(["-q", "train", "vae", "--steps", "20", "--set", "train.eval_every=7", "--runs", str(runs),
                 *QUICK_RUN]) == 0
    (run,) = runs.iterdir()
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [7, 14, 20]
    best = load_checkpoint(run / "best.pt")["best"]
    assert best["step"] == 20 and load_checkpoint(run / "checkpoint.pt")["best"] == best


def test_stop_signals_wait_for_protected_work_and_drop_abortable_work():
    before = signal.getsignal(signal.SIGTERM)
    wrote = []
    with StopSignals() as stop:
        with pytest.raises(KeyboardInterrupt):
            with stop.abortable():  # e.g. an evaluation
                with stop.protected():  # e.g. its write: the signal waits for its end
                    os.kill(os.getpid(), signal.SIGTERM)
                    wrote.append("all of it")
                wrote.append("after the write")  # not reached: dropped once the write ended
        assert wrote == ["all of it"] and stop.requested and not stop.insisted
        with pytest.raises(KeyboardInterrupt):
            with stop.abortable():  # a signal that came before the region began ends it at once
                wrote.append("never")
        with stop.abortable(at=2):  # e.g. setup: the first signal lets it finish, the second ends it
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                wrote.append("never")
        assert stop.insisted and wrote == ["all of it"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_stop_signal_ends_a_codec_ladder_once_the_quality_in_training_is_saved(tmp_path, monkeypatch, capsys):
    def announce(text: str) -> None:  # the pause point is reached: Ctrl-C, delivered right there
        if text.startswith("paused"):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setenv(PAUSE_AT, "mid-step@3")
    monkeypatch.setattr(signals, "_announce", announce)
    data = blobs(120, size=12)
    npz = tmp_path / "blobs.npz"
    np.savez(npz, x=data.x.numpy())
    runs = tmp_path / "runs"
    assert main(["-q", "train", "codec", "--data", f"npz:{npz}", "--qualities", "1,4", "--steps", "20", "--no-final",
                 "--runs", str(runs), "--set", "model.channels=[8,8]", "--set", "model.latent_dim=4",
                 "--set", "train.eval_every=0", "--set", "train.sample_every=0"]) == 0
    (ladder,) = runs.iterdir()
    assert 0 < load_checkpoint(ladder / "q1" / "checkpoint.pt")["step"] < 20
    assert not (ladder / "q4").exists() and "ladder: stopped at quality 1" in capsys.readouterr().out


def test_a_full_disk_in_the_final_report_is_one_line_and_the_run_is_saved(tmp_path, monkeypatch, capsys):
    import genlab.pictures.run_pictures as run_pictures

    def pictures(model, data, folder):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "samples.png"))

    monkeypatch.setattr(run_pictures, "write_run_pictures", pictures)
    runs = tmp_path / "runs"
    assert main(["-q", "train", "vae", "--steps", "3", "--runs", str(runs), *QUICK_RUN[:-1]]) == 2
    err = capsys.readouterr().err
    (run,) = runs.iterdir()
    assert "Traceback" not in err and "the disk is full: could not write" in err and "samples.png" in err
    assert f"the run is saved ({run / 'checkpoint.pt'}, step 3)" in err
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 3
