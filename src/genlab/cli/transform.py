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
    from ..data.user_images import load_user_images
    from ..models.capabilities import Transforms
    from ..pictures.grids import save_image_grid
    from .common import check_output, load, models_declaring, out, spoken_list

    target = check_output(args.output, (".png",))
    if not math.isfinite(args.rotate) or not (args.scale > 0 and math.isfinite(args.scale)):
        raise GenlabError("--rotate must be a finite number of degrees and --scale a positive number")
    _, model, config = load(args)
    if not isinstance(model, Transforms):
        raise GenlabError(f"a {config.model!r} model has no named units to edit, so it cannot transform "
                          f"({spoken_list(models_declaring('Transforms'))} can)")
    x = load_user_images([Path(args.image).expanduser()], config.data_info.shape).to(model.device)  # (1, C, H, W)
    with torch.no_grad():
        y = model.transform(x, rotate=math.radians(args.rotate), scale=args.scale, move=tuple(args.move))
        if args.compare:
            save_image_grid(torch.cat([x, model.reconstruct(x), y]).cpu(), target, 3)
        else:
            Image.fromarray(to_uint8(y[0])).save(target)
    out(f"wrote {target}")
    return 0
