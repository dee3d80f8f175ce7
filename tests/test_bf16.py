"""Numerical safety of ``train.precision=bf16``: what autocast may round, and what must stay exact.

Autocast runs convolutions and matrix products in bf16 (about 3 significant digits). That is fine for
a training loss, but the codec's rate (entropy-model likelihoods), its coding path (the symbols in a
file) and every validation metric (ELBO / NLL, FD, ...) must not depend on it. autocast works on any
CPU, fast bf16 or not, so these tests run everywhere.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from genlab.training import speed
from test_training import QUICK, make

from conftest import blobs, points
from test_models import CASES, batch, tiny

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)
# terms that are log-likelihoods or a penalty whose size sets the gradient: within 1% of fp32
EXACT_TERMS = ("nelbo", "recon", "bpp", "gp")


def _losses(model, phase: str, data, autocast: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)  # the same noise draws in both passes
    if not autocast:
        return model.loss(phase, batch(data), step=0)
    with torch.autocast(**BF16):
        return model.loss(phase, batch(data), step=0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c))
def test_every_phase_trains_under_bf16_autocast_like_fp32(case):
    """Each phase's loss under bf16 autocast is within 2% of fp32 on the same batch and noise, its
    likelihood terms within 1%, and its backward pass gives finite gradients."""
    name, kind, arch = case
    data = blobs(64) if kind == "image" else points(64)
    torch.manual_seed(0)
    model = tiny(name, data, arch=arch)
    for phase in model.phases():
        ref = {k: v.detach().float() for k, v in _losses(model, phase.name, data, False).items()}
        out = _losses(model, phase.name, data, True)
        assert torch.isfinite(out["loss"]), phase.name
        loss, want = float(out["loss"].detach()), float(ref["loss"])
        assert abs(loss - want) <= 0.02 * abs(want) + 1e-2, phase.name
        for key in EXACT_TERMS:
            if key in ref:
                got = float(out[key].detach().float())
                assert abs(got - float(ref[key])) <= 0.01 * abs(float(ref[key])) + 1e-3, (phase.name, key)
        model.zero_grad(set_to_none=True)
        out["loss"].float().backward()
        grads = [p.grad for p in phase.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), phase.name


def test_the_codec_rate_is_computed_in_fp32_under_autocast():
    """The entropy models run outside autocast: bits come out in fp32 and equal the fp32 pass's up to
    the rounding of the bf16 transforms in front of them."""
    data = blobs(64)
    torch.manual_seed(0)
    model = tiny("codec", data, arch="conv")
    out = _losses(model, "main", data, True)
    assert out["bpp"].dtype == torch.float32
    y = (3 * torch.randn(4, model.density_count, 5, 5)).round().bfloat16()
    with torch.autocast(**BF16):
        p = model.density.likelihood(y)
    assert p.dtype == torch.float32
    assert torch.allclose(p, model.density.likelihood(y.float()))


def test_codec_files_do_not_depend_on_autocast():
    """The symbols written to a .glc file, their tables and the decoded image are the same whether or not
    the caller runs under bf16 autocast (the coding path turns it off)."""
    data = blobs(64)
    torch.manual_seed(0)
    model = tiny("codec", data, arch="conv").eval()
    x = data.x[:4]
    plain = model.symbol_stages(x)
    with torch.autocast(**BF16):
        cast = model.symbol_stages(x)
        recon_cast = model.reconstruct(x)
    for a, b in zip(plain, cast, strict=True):
        for (ids_a, v_a), (ids_b, v_b) in zip(a, b, strict=True):
            assert (ids_a == ids_b).all() and (v_a == v_b).all()
    assert torch.equal(model.reconstruct(x), recon_cast)
    assert recon_cast.dtype == torch.float32


def test_validation_runs_in_fp32_when_training_in_bf16(tmp_path, monkeypatch):
    """With train.precision=bf16 on fast-bf16 hardware, training steps run under autocast and validation
    (the ELBO that picks best.pt) does not."""
    monkeypatch.setattr(speed, "fast_bf16", lambda device: True)
    trainer, _ = make(tmp_path, blobs(120), replace(QUICK, steps=6, eval_every=3, precision="bf16"))
    seen = {"loss": set(), "elbo": set()}

    def recording(name):
        method = getattr(trainer.model, name)

        def run(*args, **kwargs):
            seen[name].add(torch.is_autocast_enabled("cpu"))
            return method(*args, **kwargs)
        return run

    for name in seen:
        monkeypatch.setattr(trainer.model, name, recording(name))
    trainer.fit()
    assert seen == {"loss": {True}, "elbo": {False}}
