"""``genlab transform``: novel-view synthesis by editing the named units of an encoded image.

The model must declare ``Transforms`` (DC-IGN: Kulkarni et al. 2015); the edit is a change of the
factor bound to a unit (``model.unit_value``), so 0 degrees, scale 1 and no move give the
reconstruction.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from ..errors import GenlabError


def cmd_transform(args) -> int:
    from ..compression.rd import to_uint8
    from ..models.capabilities import Transforms
    from ..pictures.grids import save_image_grid
    from .common import check_output, load, models_declaring, out, spoken_list
    from .compression import read_image

    target = check_output(args.output, (".png",))
    if not math.isfinite(args.rotate) or not (args.scale > 0 and math.isfinite(args.scale)):
        raise GenlabError("--rotate must be a finite number of degrees and --scale a positive number")
    _, model, config = load(args)
    if not isinstance(model, Transforms):
        raise GenlabError(f"a {config.model!r} model has no named units to edit, so it cannot transform "
                          f"({spoken_list(models_declaring('Transforms'))} can)")
    shape = tuple(config.data_info.shape)
    x = read_image(Path(args.image).expanduser(), shape[0])  # (C, H, W) in [0, 1]
    if tuple(x.shape) != shape:
        raise GenlabError(f"{args.image} is {x.shape[2]}x{x.shape[1]} but the model was trained on "
                          f"{shape[2]}x{shape[1]} images")
    x = x.unsqueeze(0).to(model.device)  # (1, C, H, W)
    with torch.no_grad():
        y = model.transform(x, rotate=math.radians(args.rotate), scale=args.scale, move=tuple(args.move))
        if args.compare:
            save_image_grid(torch.cat([x, model.reconstruct(x), y]).cpu(), target, 3)
        else:
            Image.fromarray(to_uint8(y[0])).save(target)
    out(f"wrote {target}")
    return 0
