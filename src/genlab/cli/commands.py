"""The core sub-commands: list, train, sample, reconstruct, encode, evaluate (parsers in ``cli/main.py``).

Each handler parses its arguments, makes one library call (``genlab.api``) and prints the result.
"""

from __future__ import annotations

import json

import numpy as np

from .common import check_output, out


def cmd_list(args) -> int:
    from .listing import listing

    out(listing())
    return 0


def cmd_train(args) -> int:
    """Train one run; under torchrun every process runs this, rank 0 alone creates, writes and prints."""
    from ..api.training import train
    from ..training.signals import StopSignals

    stop = StopSignals()
    train(args.model, args.data, steps=args.steps, time=args.time, cpu_time=args.cpu_time,
          epochs=args.epochs, runs=args.runs, seed=args.seed, progress=not args.quiet, overrides=args.sets,
          labels=args.labels, label_seed=args.label_seed, qualities=args.qualities, resume=args.resume,
          final=not args.no_final, notify=out, stop=stop)
    return 130 if stop.insisted else 0  # a second stop signal: the run is saved, the user insisted


def cmd_sample(args) -> int:
    from ..api.inference import write_samples

    target = check_output(args.output, (".png", ".npz"))
    shapes = write_samples(args.run, target, n=args.n, label=args.label, caption=args.caption, seed=args.seed,
                           which=args.checkpoint, device=args.device)
    out(f"wrote {target}" + (": " + ", ".join(f"{k} {v}" for k, v in shapes.items()) if shapes else ""))
    return 0


def cmd_reconstruct(args) -> int:
    from ..api.inference import write_reconstructions

    target = check_output(args.output, (".png",))
    write_reconstructions(args.run, target, n=args.n, data=args.data, split=args.split, which=args.checkpoint,
                          device=args.device)
    out(f"wrote {target}")
    return 0


def cmd_encode(args) -> int:
    from ..api.inference import encode

    target = check_output(args.output, (".npz",))
    z, y = encode(args.run, data=args.data, split=args.split, which=args.checkpoint, device=args.device)
    arrays = {"z": z.numpy()} if y is None else {"z": z.numpy(), "y": y.numpy()}
    np.savez(target, **arrays)
    out(f"wrote {target}: z {tuple(z.shape)}" + (" with labels y" if "y" in arrays else ""))
    return 0


def cmd_evaluate(args) -> int:
    from ..api.inference import evaluate
    from ..evaluation import format_table

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    json_out = check_output(args.json, (".json",)) if args.json else None
    scores = evaluate(args.run, metrics, data=args.data, split=args.split, n=args.n, nll_k=args.nll_k,
                      which=args.checkpoint, device=args.device)
    out(format_table(scores.as_dict()))
    if json_out:
        json_out.write_text(json.dumps(scores.as_dict(), indent=2))
        out(f"wrote {json_out}")
    return 0

