"""train.precision and train.compile: the choices, and the clean fall-back when they cannot help."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch

from genlab.errors import GenlabError
from genlab.training import speed
from test_training import QUICK, make, params

from conftest import blobs


def test_precision_choices(monkeypatch, caplog):
    cpu = torch.device("cpu")
    assert speed.autocast_dtype("fp32", cpu) is None
    with pytest.raises(GenlabError, match="precision"):
        speed.autocast_dtype("fp8", cpu)
    monkeypatch.setattr(speed, "fast_bf16", lambda device: True)
    assert speed.autocast_dtype("bf16", cpu) is torch.bfloat16 and speed.autocast_dtype("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(speed, "fast_bf16", lambda device: False)
    with caplog.at_level(logging.WARNING):
        assert speed.autocast_dtype("bf16", cpu) is None
    assert "no fast bf16" in caplog.text
    assert speed.autocast_dtype("auto", cpu) is None


class _FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("this backward cannot run compiled")


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_a_failing_compile_falls_back_to_eager(tmp_path, monkeypatch, caplog, where):
    """The first compiled step fails (while compiling, or in its backward, as a gradient penalty's
    double backward does): the phase runs eagerly from that very step, and trains as without compile."""
    def fake_compile(fn):
        def compiled(*args, **kwargs):
            if where == "forward":
                raise RuntimeError("no C++ compiler")
            out = fn(*args, **kwargs)
            return {**out, "loss": _FailingBackward.apply(out["loss"])}
        return compiled

    monkeypatch.setattr(speed.torch, "compile", fake_compile)
    data = blobs(120)
    eager, _ = make(tmp_path, data, replace(QUICK, steps=5))
    eager.fit()
    compiled, _ = make(tmp_path, data, replace(QUICK, steps=5, compile=True))
    with caplog.at_level(logging.WARNING):
        compiled.fit()
    assert caplog.text.count("running it eagerly") == 1
    assert compiled.step == 5 and torch.isfinite(params(compiled.model)).all()
    if where == "forward":  # nothing of the failed attempt was consumed: the very same training
        assert torch.equal(params(eager.model), params(compiled.model))


def _denormal_survives() -> bool:
    tiny = torch.tensor([1e-39])  # a denormal float32
    return (tiny * 1.0).item() != 0.0


def test_denormals_are_flushed_while_training_only(tmp_path, monkeypatch):
    """train.flush_denormal: the CPU treats denormals as 0 inside fit (the steps see it), and the
    process computes as before once fit returns; with the option off, nothing changes."""
    assert _denormal_survives()
    seen = []
    for flush in (True, False):
        trainer, _ = make(tmp_path, blobs(120), replace(QUICK, steps=3, flush_denormal=flush))
        step = trainer.train_step
        monkeypatch.setattr(trainer, "train_step", lambda step=step: (seen.append(_denormal_survives()), step())[1])
        trainer.fit()
        assert _denormal_survives()
    assert seen == [False] * 3 + [True] * 3


def test_backward_fills_only_the_phase_parameters(tmp_path, monkeypatch):
    """A loss that also depends on a tensor outside the model (as WGAN-GP's interpolates do) trains the
    model, and the backward spends nothing on that tensor's gradient."""
    trainer, _ = make(tmp_path, blobs(120), replace(QUICK, steps=2))
    outside = torch.ones(1, requires_grad=True)
    loss = trainer.model.loss

    def loss_with_outside(phase, batch, *, step=0):
        out = loss(phase, batch, step=step)
        return {**out, "loss": out["loss"] * outside.sum()}

    monkeypatch.setattr(trainer.model, "loss", loss_with_outside)
    before = params(trainer.model).clone()
    trainer.fit()
    assert outside.grad is None
    assert not torch.equal(before, params(trainer.model))


def test_cpu_description_names_the_fast_bf16_the_trainer_detects(monkeypatch):
    """Benchmarks quote timings with this line: it must agree with what ``precision=auto`` detects."""
    for flags, fast in [(frozenset({"avx2", "amx_bf16"}), "amx_bf16"), (frozenset({"avx2"}), "none")]:
        monkeypatch.setattr(speed, "_cpu_flags", lambda flags=flags: flags)
        line = speed.cpu_description()
        assert line.endswith(f"fast bf16: {fast})")
        assert speed.fast_bf16(torch.device("cpu")) == (fast != "none")
