"""train.ema: the moving average of the weights is what a run evaluates, keeps and reloads; it resumes exactly."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from genlab.api.training import make_trainer
from genlab.models import build_model
from genlab.runs import load_checkpoint, load_model
from genlab.runs.logs import read_jsonl
from genlab.training.ema import WeightAverage
from test_training import QUICK, make, params

from conftest import blobs


def test_the_average_follows_the_formula_with_its_warm_up():
    net = nn.BatchNorm1d(2)
    average = WeightAverage(net, 0.9)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
        net.num_batches_tracked.fill_(7)
    average.update()  # t = 1: d = min(0.9, 2 / 11)
    d = 2 / 11
    assert torch.allclose(average.average["weight"], d * start + (1 - d) * (start + 1))
    assert average.average["num_batches_tracked"] == 7  # integers are copied, not averaged
    for _ in range(200):
        average.update()
    assert torch.allclose(average.average["weight"], start + 1, atol=1e-6)  # a constant weight is its own average
    with average.applied():
        net.weight.data.zero_()  # changed inside: the model's own weights come back after the block
    assert torch.equal(net.weight.detach(), start + 1)


def test_a_run_with_ema_evaluates_and_keeps_the_average(tmp_path):
    """Validation sees the averaged weights, best.pt holds them, the checkpoint holds both, and load_model
    (best or last) gives the average; the model keeps training on its own weights."""
    data = blobs(200)
    trainer, run = make(tmp_path, data, replace(QUICK, steps=20, eval_every=10, ema=0.9))
    seen = []
    validate = trainer.validate

    def recording(model):
        seen.append(params(model))
        return validate(model)

    trainer.validate = recording
    trainer.fit()
    own, average = params(trainer.model), torch.cat([v.flatten() for v in trainer.average.average.values()
                                                      if v.is_floating_point()])
    assert not torch.equal(own, average)
    assert torch.equal(seen[-1], average)  # the final validation ran on the average
    state = load_checkpoint(run.checkpoint)
    assert torch.equal(torch.cat([v.flatten() for v in state["model"].values() if v.is_floating_point()]), own)
    for which in ("best", "last"):
        assert torch.equal(params(load_model(run.path, which=which)[0]), seen[-1] if which == "last" else
                           params(load_model(run.path, which="best")[0]))
    best_step = state["best"]["step"]
    assert torch.equal(params(load_model(run.path, which="best")[0]), seen[best_step // 10 - 1])
    assert [r["step"] for r in read_jsonl(run.path / "metrics.jsonl")] == [10, 20]


def test_resume_with_ema_equals_an_uninterrupted_run(tmp_path):
    data = blobs(200)
    cfg = replace(QUICK, steps=24, ema=0.95)
    whole, _ = make(tmp_path, data, cfg)
    whole.fit()
    first, run = make(tmp_path, data, replace(cfg, steps=10))
    first.fit()
    second = make_trainer(build_model(run.read_config()), data, run, cfg, progress=False)
    second.resume()
    second.fit()
    assert torch.equal(params(whole.model), params(second.model))
    for k, v in whole.average.average.items():
        assert torch.equal(v, second.average.average[k]), k
    assert whole.average.updates == second.average.updates == 24
