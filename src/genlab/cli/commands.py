"""What each ``genlab`` sub-command does, given its parsed arguments (see ``cli.py``)."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig, DataInfo, RunConfig, TrainConfig, apply_overrides, parse_duration
from ..errors import GenlabError
from ..registry import METRICS, MODELS

log = logging.getLogger("genlab")


def _out(text: str = "") -> None:
    print(text, file=sys.stdout, flush=True)


def cmd_list(args) -> int:
    import genlab.evaluation  # noqa: F401  (registers the metrics)
    import genlab.models  # noqa: F401

    from ..data import dataset_names

    _out("models:")
    for name in MODELS:
        _out(f"  {name:<12} {MODELS.help(name)}")
    _out("data sets:")
    for name in dataset_names():
        _out(f"  {name}")
    _out("metrics:")
    for name in METRICS:
        _out(f"  {name:<12} {METRICS.help(name)}")
    return 0


# --- data ------------------------------------------------------------------------------------
def load_run_data(cfg: DataConfig):
    from ..data import load_data

    return load_data(cfg.spec, image_size=cfg.image_size, channels=cfg.channels, seed=cfg.seed)


def data_for_run(config: RunConfig, spec: str | None):
    """The run's own data, or another data set loaded to the run's image size and checked for shape."""
    data = load_run_data(config.data if spec is None else replace(config.data, spec=spec))
    if config.data_info is not None and tuple(data.shape) != tuple(config.data_info.shape):
        raise GenlabError(f"{spec or config.data.spec} has items of shape {tuple(data.shape)} but the model "
                          f"was trained on {tuple(config.data_info.shape)}")
    return data


def _split(args, own_data: bool) -> str:
    split = args.split or ("test" if own_data else "all")
    if split not in ("train", "val", "test", "all"):
        raise GenlabError(f"--split {split!r}: use train, val, test or all")
    return split


# --- train -----------------------------------------------------------------------------------
def _train_config(args, train: TrainConfig) -> TrainConfig:
    budget = {"time": parse_duration(args.time) if args.time else None, "epochs": args.epochs,
              "cpu_time": parse_duration(args.cpu_time) if getattr(args, "cpu_time", None) else None,
              "steps": args.steps}
    if args.seed is not None:
        budget["seed"] = args.seed
    return replace(train, **{k: v for k, v in budget.items() if v is not None})


def cmd_train(args) -> int:
    """Train one run; under torchrun every process runs this, rank 0 alone creates, writes and prints."""
    from ..training import distributed

    try:
        return _train(args)
    finally:
        distributed.shutdown()


def _train(args) -> int:
    import genlab.evaluation  # noqa: F401
    import genlab.models  # noqa: F401

    from ..models import build_model
    from ..runs import Run, new_run, open_run
    from ..training import Trainer, distributed

    model_cls = MODELS.get(args.model)
    if getattr(args, "qualities", None):
        from ..compression.ladder import train_ladder

        return train_ladder(args, cmd_train)
    if args.resume:
        run = open_run(args.resume)
        config = run.read_config()
        if config.model != args.model:
            raise GenlabError(f"{run.path} is a {config.model!r} run, not {args.model!r}")
        if args.data and args.data != config.data.spec:
            raise GenlabError(f"{run.path} was trained on {config.data.spec!r}, not {args.data!r}")
        if args.labels is not None and args.labels != config.data.labels:
            raise GenlabError(f"{run.path} was trained with a labels budget of {config.data.labels}, "
                              f"not {args.labels}")
        train = apply_overrides({"train": config.train}, args.sets)["train"]
        # --time / --cpu-time count this invocation, --steps/--epochs the total; with none given, the
        # run's own budget stands (its steps/epochs target, or its time once more)
        if args.time or args.cpu_time or args.epochs is not None or args.steps is not None:
            train = replace(train, time=None, cpu_time=None, steps=None, epochs=None)
        config = replace(config, train=_train_config(args, train))
    else:
        parts = apply_overrides({"model": model_cls.Config(), "train": TrainConfig(**model_cls.train_defaults),
                                 "data": DataConfig(spec=args.data or "mnist5k")}, args.sets)
        budget = {"labels": args.labels, "label_seed": args.label_seed}
        parts["data"] = replace(parts["data"], **{k: v for k, v in budget.items() if v is not None})
        config = RunConfig(model=args.model, model_config=parts["model"], data=parts["data"],
                           train=_train_config(args, parts["train"]))
    world = distributed.init_from_env(config.train.device)
    out = _out if world.main else (lambda text="": None)
    if not world.main:
        logging.getLogger().setLevel(logging.WARNING)
    data = load_run_data(config.data)
    config = replace(config, data_info=data_info(data))
    model = build_model(config)
    data, labelled = _label_budget(config, model, data)
    if getattr(model, "batch_plan", None) is not None:  # one-factor batches need a renderable data set
        from ..data.factors import check_factor_batches

        check_factor_batches(data, model.batch_plan, f"a {config.model!r} model")
    if not args.resume:
        made = new_run(Path(args.runs), config.model, data.name, name=getattr(args, "run_name", None)) \
            if world.main else None
        run = Run(Path(distributed.broadcast_object(None if made is None else str(made.path), world)))
    if world.main:
        run.write_config(config)
    out(f"run folder: {run.path}" + (f" ({world.size} processes, {world.backend})" if world.distributed else ""))
    if labelled is not None and world.main:
        from ..data.labels import write_label_record

        record = write_label_record(run.path / "labelled.json", data, labelled, n=config.data.labels,
                                    seed=config.data.label_seed, share=config.data.label_share)
        out(f"labels budget: {len(labelled)} labelled train examples, the rest unlabelled ({record})")
    trainer = Trainer(model, data, run, config.train, progress=not args.quiet)
    if args.resume:
        trainer.resume()
    result = trainer.fit()
    status = "interrupted" if result.interrupted else "finished"
    out(f"{status} at step {result.step} ({result.epochs:.1f} epochs, {result.seconds:.0f} s); "
        f"checkpoint: {run.checkpoint}")
    if result.interrupted or args.no_final or not world.main:
        return 0
    _final_report(run, data)
    return 0


def data_info(data) -> DataInfo:
    """What a model is built from: the items' shape and kind, classes, and known generative factors."""
    ranges, periods = data.meta.get("factor_ranges"), data.meta.get("factor_periods")
    names = tuple(data.factor_names) if data.factor_names else None
    return DataInfo(shape=tuple(data.shape), kind=data.kind, num_classes=data.num_classes,
                    class_names=tuple(data.class_names) if data.class_names else None,
                    factor_names=names,
                    factor_ranges=tuple(tuple(map(float, ranges[f])) for f in names) if names and ranges else None,
                    factor_periods=tuple(float(periods[f]) for f in names) if names and periods else None)


def _label_budget(config: RunConfig, model, data):
    """``--labels N``: (a view of the data whose train batches show N balanced labels, their indices);
    (data, None) without a budget. Only a model that learns from hidden labels (y = -1) takes one."""
    n = config.data.labels
    if n is None:
        return data, None
    if not getattr(model, "semi_supervised", False):
        able = [m for m in MODELS if getattr(MODELS.get(m), "semi_supervised", False)]
        raise GenlabError(f"--labels {n}: a {config.model!r} model does not learn from partly labelled data "
                          f"(these do: {', '.join(able) or 'none'})")
    from ..data.labels import with_label_budget

    return with_label_budget(data, n, config.data.label_seed, share=config.data.label_share)


def _final_report(run, data) -> None:
    """Best weights -> pictures in the run folder and test metrics in metrics.json."""
    from ..evaluation import evaluate, format_table
    from ..pictures.run_pictures import write_run_pictures
    from ..runs import load_model

    model, _ = load_model(run)
    pictures = write_run_pictures(model, data, run.path)
    result = evaluate(model, data, split="test")
    (run.path / "metrics.json").write_text(json.dumps(result, indent=2))
    _out(format_table(result))
    _out(f"pictures: {', '.join(str(p) for p in pictures)}")
    _out(f"curves:   {run.path / 'curves.png'}  (TensorBoard: tensorboard --logdir {run.path / 'tb'})")
    _out(f"metrics:  {run.path / 'metrics.json'}")


# --- using a trained run ---------------------------------------------------------------------
def _load(args):
    import genlab.models  # noqa: F401

    from ..runs import load_model, open_run

    run = open_run(args.run)
    model, config = load_model(run, which=args.checkpoint, device=args.device)
    return run, model, config


def _need_encoder(model, config: RunConfig, what: str) -> None:
    from ..pictures.run_pictures import has_encoder

    if not has_encoder(model):
        raise GenlabError(f"a {config.model!r} model has no encoder, so it cannot {what}")


def _check_output(path: str, suffixes: tuple[str, ...]) -> Path:
    out = Path(path).expanduser()
    if out.suffix.lower() not in suffixes:
        raise GenlabError(f"output {out} must end in {' or '.join(suffixes)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _sample_labels(model, config: RunConfig, label: int | None, n: int) -> torch.Tensor | None:
    """(n,) copies of ``--label K`` for a class-conditional model, or a mixture model's component K."""
    if label is None:
        return None
    classes = model.sample_groups
    if not classes:
        raise GenlabError(f"a {config.model!r} model is not class-conditional, so it takes no --label")
    if not 0 <= label < classes:
        what = "classes" if getattr(model, "num_classes", None) else "components"
        raise GenlabError(f"--label {label} is out of range: this model's {what} are 0..{classes - 1}")
    return torch.full((n,), label, dtype=torch.long)


def _sample_caption(model, config: RunConfig, caption: str, n: int, *, label: int | None) -> torch.Tensor:
    """(n, S) copies of the condition of ``--caption TEXT`` for a caption-conditional model."""
    if label is not None:
        raise GenlabError("give --label or --caption, not both")
    if not hasattr(model, "parse_caption"):
        raise GenlabError(f"a {config.model!r} model is not caption-conditional, so it takes no --caption")
    return model.parse_caption(caption).expand(n, -1)


def cmd_sample(args) -> int:
    from ..pictures.grids import save_samples

    out = _check_output(args.output, (".png", ".npz"))
    if args.n < 1:
        raise GenlabError("-n must be at least 1")
    run, model, config = _load(args)
    y = _sample_labels(model, config, args.label, args.n)
    if getattr(args, "caption", None) is not None:
        y = _sample_caption(model, config, args.caption, args.n, label=args.label)
    g = torch.Generator().manual_seed(args.seed)
    if out.suffix.lower() == ".npz":
        with torch.no_grad():
            drawn = model.sample_with_latents(args.n, y=y, generator=g)
        np.savez(out, **{k: v.detach().cpu().numpy() for k, v in drawn.items()})
        _out(f"wrote {out}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in drawn.items()))
        return 0
    kind, per_row, extra = config.data_info.kind, None, {}
    classes = model.sample_groups
    if y is None and classes and kind == "image":  # a conditional or mixture model: one row per group
        per_row = -(-args.n // classes)
        y = torch.arange(classes).repeat_interleave(per_row)
    if kind == "points":  # samples over the real points and the exact mode centres
        data = load_run_data(config.data)
        extra = {"real": data.tensors("test", limit=2000)[0], "centres": data.meta.get("centres")}
    with torch.no_grad():
        x = model.sample(args.n if y is None else len(y), y=y, generator=g)
    save_samples(x, out, kind=kind, nrow=per_row, **extra)
    _out(f"wrote {out}")
    return 0


def _encoder_job(args, what: str, suffixes: tuple[str, ...] = (".png",)):
    """Output path, model, config and data of a command that needs an encoder model."""
    out = _check_output(args.output, suffixes)
    _, model, config = _load(args)
    _need_encoder(model, config, what)
    return out, model, config, data_for_run(config, args.data)


def cmd_reconstruct(args) -> int:
    from ..pictures.grids import save_reconstructions

    out, model, _, data = _encoder_job(args, "reconstruct")
    x, _ = data.tensors(_split(args, args.data is None), limit=args.n)
    with torch.no_grad():
        save_reconstructions(x, model.reconstruct(x.to(model.device)).cpu(), out, nrow=min(16, len(x)))
    _out(f"wrote {out}")
    return 0


def cmd_encode(args) -> int:
    out, model, _, data = _encoder_job(args, "encode", (".npz",))
    index = data.indices(_split(args, args.data is None))
    with torch.no_grad():
        z = torch.cat([model.encode(data.images(i).to(model.device)).cpu() for i in index.split(500)])
    arrays = {"z": z.numpy()}
    if data.y is not None:
        arrays["y"] = data.y[index].numpy()
    np.savez(out, **arrays)
    _out(f"wrote {out}: z {tuple(z.shape)}" + (" with labels y" if "y" in arrays else ""))
    return 0


def cmd_evaluate(args) -> int:
    import genlab.evaluation  # noqa: F401

    from ..evaluation import evaluate, format_table

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    for name in metrics or []:
        METRICS.get(name)  # unknown names fail here, with the list of valid ones
    if args.json:
        json_out = _check_output(args.json, (".json",))
    run, model, config = _load(args)
    data = data_for_run(config, args.data)
    split = _split(args, args.data is None)
    if split == "all" or split not in data.splits:
        split = "test"
    result = evaluate(model, data, split=split, metrics=metrics, n=args.n, nll_k=args.nll_k)
    _out(format_table(result))
    if args.json:
        json_out.write_text(json.dumps(result, indent=2))
        _out(f"wrote {json_out}")
    return 0



from .clustering import cmd_analogies, cmd_cluster, cmd_probe  # noqa: E402,F401
from .compression import cmd_compress, cmd_decompress, cmd_rd  # noqa: E402,F401
