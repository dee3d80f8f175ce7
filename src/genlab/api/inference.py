"""Using a trained run: conditions for sampling, sample files, reconstructions, codes, metrics.

Each function takes a ``Run`` (or a run folder) or a model, and returns tensors, a dict or the path
it wrote; the CLI's ``sample``, ``reconstruct``, ``encode`` and ``evaluate`` are these calls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import MAX_SAMPLES, check_value
from ..data import DataSet
from ..errors import GenlabError
from ..evaluation import evaluate as evaluate_model
from ..models.base import GenerativeModel
from ..models.capabilities import CaptionConditional, ClassConditional, Decodes, Encodes
from ..registry import METRICS
from ..runs import Run, data_for_run, load_model, load_run_data, open_run
from ..training import resolve_device

RunLike = Run | str | Path


def _run(run: RunLike) -> Run:
    return run if isinstance(run, Run) else open_run(run)


def need_encoder(model: GenerativeModel, name: str, what: str) -> None:
    """A GenlabError unless the model ``Encodes``: ``what`` is what it cannot do without (e.g. "cluster")."""
    if not (isinstance(model, Encodes) and isinstance(model, Decodes)):
        raise GenlabError(f"a {name!r} model has no encoder, so it cannot {what}")


def eval_split(split: str | None, own_data: bool) -> str:
    """The split a command works on: the given one, else test for the run's own data and all for other data."""
    split = split or ("test" if own_data else "all")
    if split not in ("train", "val", "test", "all"):
        raise GenlabError(f"--split {split!r}: use train, val, test or all")
    return split


def condition(model: GenerativeModel, n: int, *, label: int | None = None, caption: str | None = None,
              name: str = "this") -> Tensor | None:
    """The ``y`` of ``model.sample(n, y=...)``: (n,) copies of class ``label`` (or mixture component),
    (n, S) copies of a caption's condition, or None."""
    if caption is not None:
        if label is not None:
            raise GenlabError("give --label or --caption, not both")
        if not isinstance(model, CaptionConditional):
            raise GenlabError(f"a {name!r} model is not caption-conditional, so it takes no --caption")
        return model.parse_caption(caption).expand(n, -1)
    if label is None:
        return None
    groups = model.sample_groups
    if not groups:
        raise GenlabError(f"a {name!r} model is not class-conditional, so it takes no --label")
    if not 0 <= label < groups:
        what = "classes" if isinstance(model, ClassConditional) else "components"
        raise GenlabError(f"--label {label} is out of range: this model's {what} are 0..{groups - 1}")
    return torch.full((n,), label, dtype=torch.long)


def write_samples(run: RunLike, out: str | Path, *, n: int = 64, label: int | None = None, caption: str | None = None,
                  seed: int = 0, which: str = "best", device: str = "cpu") -> dict[str, tuple[int, ...]] | None:
    """Samples of a run into ``out``: a ``.npz`` of the arrays (x, z[, y]) (their shapes are returned), or a
    ``.png`` grid (a conditional or mixture model: one row per group; points: over the real points)."""
    from ..pictures.grids import save_samples

    out = Path(out)
    check_value(f"-n {n}", n, int, min=1, max=MAX_SAMPLES)
    run = _run(run)
    model, config = load_model(run, which=which, device=resolve_device(device))
    y = condition(model, n, label=label, caption=caption, name=config.model)
    g = torch.Generator().manual_seed(seed)
    if out.suffix.lower() == ".npz":
        with torch.no_grad():
            drawn = model.sample_with_latents(n, y=y, generator=g)
        np.savez(out, **{k: v.detach().cpu().numpy() for k, v in drawn.items()})
        return {k: tuple(v.shape) for k, v in drawn.items()}
    kind, per_row, extra = config.data_info.kind, None, {}
    groups = model.sample_groups
    if y is None and groups and kind == "image" and n > 1:  # a conditional or mixture model: a row a group
        per_row = -(-n // groups)
        y = torch.arange(groups).repeat_interleave(per_row)
    if kind == "points":  # samples over the real points and the exact mode centres
        data = load_run_data(config.data)
        extra = {"real": data.tensors("test", limit=2000)[0], "centres": data.meta.get("centres")}
    with torch.no_grad():
        x = model.sample(n if y is None else len(y), y=y, generator=g)
    save_samples(x, out, kind=kind, nrow=per_row, **extra)
    return None


def _encoder_run(run: RunLike, what: str, data: str | None, which: str, device: str
                 ) -> tuple[GenerativeModel, DataSet]:
    model, config = load_model(_run(run), which=which, device=resolve_device(device))
    need_encoder(model, config.model, what)
    return model, data_for_run(config, data)


def write_reconstructions(run: RunLike, out: str | Path, *, n: int = 32, data: str | None = None,
                          split: str | None = None, which: str = "best", device: str = "cpu") -> Path:
    """Held-out inputs above, their reconstructions below, as a PNG."""
    from ..pictures.grids import save_reconstructions

    model, dataset = _encoder_run(run, "reconstruct", data, which, device)
    x, _ = dataset.tensors(eval_split(split, data is None), limit=n)
    with torch.no_grad():
        return save_reconstructions(x, model.reconstruct(x.to(model.device)).cpu(), Path(out), nrow=min(16, len(x)))


@torch.no_grad()
def encode(run: RunLike, *, data: str | None = None, split: str | None = None, which: str = "best",
           device: str = "cpu") -> tuple[Tensor, Tensor | None]:
    """Latent codes (N, D) (posterior means) of a split of the run's data (or ``data``), and its labels (N,)."""
    model, dataset = _encoder_run(run, "encode", data, which, device)
    index = dataset.indices(eval_split(split, data is None))
    z = torch.cat([model.encode(dataset.images(i).to(model.device)).cpu() for i in index.split(500)])
    return z, (dataset.y[index] if dataset.y is not None else None)


class Scores(dict):
    """Metric values by name (``scores["fd"]``), with ``floor`` (the same metric between held-out and
    training data: the best one can hope for) and ``info`` (split, n, feature net) beside them."""

    def __init__(self, result: dict):
        super().__init__(result["values"])
        self.floor: dict[str, float] = dict(result.get("floor", {}))
        self.info: dict = dict(result.get("info", {}))

    def as_dict(self) -> dict:
        """{"values": ..., "floor": ..., "info": ...}: what ``genlab evaluate --json`` writes."""
        return {"values": dict(self), "floor": self.floor, "info": self.info}


def evaluate(run: RunLike | GenerativeModel, metrics: list[str] | None = None, *, data: str | DataSet | None = None,
             split: str | None = None, n: int | None = None, nll_k: int = 200, which: str = "best",
             device: str = "cpu", seed: int = 0) -> Scores:
    """Metrics of a run (its ``best`` weights) or a model on held-out data (the test split of the run's
    own data, or ``data``): ``metrics`` by name (see ``genlab list``), None for all that apply."""
    for name in metrics or []:
        METRICS.get(name)  # unknown names fail here, with the list of valid ones
    if isinstance(run, GenerativeModel):
        if not isinstance(data, DataSet):
            raise GenlabError("evaluating a model needs its data: pass data=DataSet")
        model, dataset = run, data
    else:
        model, config = load_model(_run(run), which=which, device=resolve_device(device))
        dataset = data if isinstance(data, DataSet) else data_for_run(config, data)
    split = eval_split(split, data is None)
    if split == "all" or split not in dataset.splits:
        split = "test"
    return Scores(evaluate_model(model, dataset, split=split, metrics=metrics, n=n, nll_k=nll_k, seed=seed))
