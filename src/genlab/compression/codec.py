"""Real bits from a learned codec: range coding of the quantised latents with integer tables.

``compress(model, images)`` runs g_a, rounds, and range-codes every latent with its channel's
integer PMF (``Codec.coding_tables``) using ``constriction``'s range coder (Bamler 2022,
"Understanding entropy coding with asymmetric numeral systems (ANS): a statistician's
perspective"); ``decompress`` inverts it and runs g_s. All images of a file share one coder
stream, so the fixed cost is per file: the coder's flush to whole 32-bit words (at most
``FLUSH_BITS``) plus the header (``format.HEADER_BYTES`` + 6 + len(name) bytes per image).

Decoding is exact: the decoder rebuilds the same integer tables from the same weights (the file
names the model by a hash that covers the tables), decodes the same integers, and runs g_s on
groups of consecutive same-size images, exactly as ``model.reconstruct`` does on that batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import constriction
import numpy as np
import torch
from torch import Tensor

from ..config import to_dict
from ..errors import GenlabError
from ..models.codec import PMF_BITS
from . import format as glc

FLUSH_BITS = 64  # the range coder's end-of-stream cost: at most two 32-bit words
RATE_TOLERANCE = 0.02  # payload <= (1 + 2%) * estimated bits + FLUSH_BITS


def model_identity(model) -> bytes:
    """8 bytes of SHA-256 over the codec's config, data shape, weights and integer tables."""
    h = hashlib.sha256()
    h.update(json.dumps({"config": to_dict(model.config), "shape": list(model.data_info.shape)},
                        sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for table in model.coding_tables():
        h.update(np.ascontiguousarray(table, dtype="<i8").tobytes())
    return h.digest()[:8]


def _channel_models(model) -> tuple[np.ndarray, list]:
    """Per latent channel: its lowest symbol and a constriction categorical model."""
    lo, pmf = model.coding_tables()
    models = []
    for row in pmf:
        p = row[row > 0].astype(np.float64) / (1 << PMF_BITS)  # exact: integers over a power of two
        models.append(constriction.stream.model.Categorical(p, perfect=False))
    return lo, models


def _groups(sizes: Sequence[tuple]) -> list[tuple[int, int]]:
    """(start, stop) of runs of consecutive equal sizes: the batches g_a / g_s see."""
    out, start = [], 0
    for i in range(1, len(sizes) + 1):
        if i == len(sizes) or sizes[i] != sizes[start]:
            out.append((start, i))
            start = i
    return out


def _check_images(model, images: Sequence[Tensor]) -> None:
    shape = tuple(model.data_info.shape)
    if not model.is_image:
        raise GenlabError("only image codecs write .glc files")
    for i, x in enumerate(images):
        if x.ndim != 3 or x.shape[0] != shape[0]:
            raise GenlabError(f"image {i} has shape {tuple(x.shape)}; this codec codes {shape[0]}-channel "
                              "images (C, H, W)")
        if not model.conv and tuple(x.shape) != shape:
            raise GenlabError(f"image {i} is {tuple(x.shape)}: an MLP codec only codes {shape} images")


@torch.no_grad()
def quantized_latents(model, images: Sequence[Tensor]) -> list[Tensor]:
    """y_hat per image (M, h, w), computed in the same batches that ``compress`` uses."""
    out: list[Tensor] = []
    sizes = [tuple(x.shape) for x in images]
    for a, b in _groups(sizes):
        batch = torch.stack(list(images[a:b])).to(model.device)
        out += list(model.quantized_latents(batch).cpu())
    return out


def compress(model, images: Sequence[Tensor], *, names: Sequence[str] | None = None,
             quality: int | None = None) -> bytes:
    """Images (C, H, W) in [0, 1] -> the bytes of a .glc file."""
    _check_images(model, images)
    model.eval()
    names = list(names) if names is not None else [f"image{i:04d}" for i in range(len(images))]
    lo, models = _channel_models(model)
    encoder = constriction.stream.queue.RangeEncoder()
    for y_hat in quantized_latents(model, images):
        symbols = y_hat.reshape(len(models), -1).to(torch.int64).numpy() - lo[:, None]  # (M, h*w)
        for c, m in enumerate(models):
            encoder.encode(symbols[c].astype(np.int32), m)
    payload = encoder.get_compressed().astype("<u4").tobytes()
    sizes = [(int(x.shape[1]), int(x.shape[2]), int(x.shape[0])) for x in images]
    q = model.config.quality if quality is None else quality
    return glc.pack(glc.GlcFile(model_id=model_identity(model), quality=q, sizes=sizes, names=names,
                                payload=payload))


def check_model(model, parsed: glc.GlcFile, *, source: str = "file") -> None:
    """GenlabError unless ``parsed`` was written by exactly this model."""
    mine = model_identity(model)
    if parsed.model_id != mine:
        raise GenlabError(f"{source} was made by model {parsed.model_id.hex()}, not by this run's model "
                          f"{mine.hex()}; pass --run RUN_FOLDER of the model that made it")


@torch.no_grad()
def decompress(model, data: bytes, *, source: str = "file") -> tuple[list[Tensor], list[str]]:
    """The bytes of a .glc file -> (images (C, H, W) in [0, 1], names)."""
    parsed = glc.unpack(data, source=source)
    check_model(model, parsed, source=source)
    model.eval()
    lo, models = _channel_models(model)
    words = np.frombuffer(parsed.payload, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    latents = []
    try:
        for h, w, c in parsed.sizes:
            shape = model.latent_shape((c, h, w))
            count = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            rows = [decoder.decode(m, count).astype(np.int64) + lo[i] for i, m in enumerate(models)]
            latents.append(torch.from_numpy(np.stack(rows).astype(np.float32)).reshape(shape))
    except Exception as err:  # noqa: BLE001  (constriction raises plain errors on bad streams)
        raise GenlabError(f"{source} is corrupt (the payload does not decode: {err})") from None
    images: list[Tensor] = []
    chw = [(c, h, w) for h, w, c in parsed.sizes]
    for a, b in _groups(chw):
        y_hat = torch.stack(latents[a:b]).to(model.device)
        images += list(model.output(model.synthesize(y_hat, chw[a])).cpu())
    return images, parsed.names


@torch.no_grad()
def rate_check(model, images: Sequence[Tensor]) -> dict:
    """Real payload bits against the model's estimate -log2 p(y_hat), for a list of images.

    ``ok`` holds when payload <= (1 + RATE_TOLERANCE) * estimate + FLUSH_BITS."""
    data = compress(model, images)
    payload_bits = 8 * len(glc.unpack(data).payload)
    estimate = 0.0
    for a, b in _groups([tuple(x.shape) for x in images]):
        estimate += float(model.estimated_bits(torch.stack(list(images[a:b])).to(model.device)).sum())
    limit = (1 + RATE_TOLERANCE) * estimate + FLUSH_BITS
    return {"images": len(images), "estimated_bits": estimate, "payload_bits": payload_bits,
            "file_bits": 8 * len(data), "limit_bits": limit, "ok": payload_bits <= limit}


@torch.no_grad()
def payload_bytes_per_image(model, images: Sequence[Tensor]) -> list[int]:
    """Payload bytes of each image coded alone (its own stream, flush included): the honest
    per-image rate for rate–distortion curves."""
    _check_images(model, images)
    model.eval()
    lo, models = _channel_models(model)
    sizes = []
    for y_hat in quantized_latents(model, images):
        encoder = constriction.stream.queue.RangeEncoder()
        symbols = y_hat.reshape(len(models), -1).to(torch.int64).numpy() - lo[:, None]
        for c, m in enumerate(models):
            encoder.encode(symbols[c].astype(np.int32), m)
        sizes.append(4 * len(encoder.get_compressed()))
    return sizes
