"""Real bits from a learned codec: range coding of the quantised latents with integer tables.

``compress(model, images)`` asks the model for each image's coding stages (table id, integer
pairs: ``Codec.symbol_stages``) and range-codes every integer with its table's integer PMF
(``Codec.coding_tables``) using ``constriction``'s range coder (Bamler 2022, "Understanding entropy
coding with asymmetric numeral systems (ANS): a statistician's perspective"); within a stage the
integers go table by table, in order. ``decompress`` inverts it stage by stage
(``Codec.decode_stages``: the ids of a stage may depend on the integers decoded before) and runs
g_s. All images of a file share one coder stream, so the fixed cost is per file: the coder's
flush to whole 32-bit words (at most ``FLUSH_BITS``) plus the header (``format.HEADER_BYTES`` + 6 +
len(name) bytes per image).

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
from ..models.entropy import PMF_BITS
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


def _table_models(model) -> tuple[np.ndarray, list]:
    """Per coding table: its lowest symbol and a constriction categorical model."""
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
def image_stages(model, images: Sequence[Tensor]) -> list:
    """Each image's coding stages, computed in the same batches that ``model.reconstruct`` sees."""
    out: list = []
    for a, b in _groups([tuple(x.shape) for x in images]):
        out += model.symbol_stages(torch.stack(list(images[a:b])).to(model.device))
    return out


def _encode(encoder, stages, lo: np.ndarray, models: list) -> None:
    for ids, values in stages:
        for t in np.unique(ids):  # table by table, each table's integers in their order
            encoder.encode((values[ids == t] - lo[t]).astype(np.int32), models[t])


def _reader(decoder, lo: np.ndarray, models: list):
    def read(ids: np.ndarray) -> np.ndarray:
        values = np.empty(len(ids), dtype=np.int64)
        for t in np.unique(ids):
            mask = ids == t
            values[mask] = decoder.decode(models[t], int(mask.sum())).astype(np.int64) + lo[t]
        return values

    return read


def compress(model, images: Sequence[Tensor], *, names: Sequence[str] | None = None,
             quality: int | None = None) -> bytes:
    """Images (C, H, W) in [0, 1] -> the bytes of a .glc file."""
    _check_images(model, images)
    model.eval()
    names = list(names) if names is not None else [f"image{i:04d}" for i in range(len(images))]
    lo, models = _table_models(model)
    encoder = constriction.stream.queue.RangeEncoder()
    for stages in image_stages(model, images):
        _encode(encoder, stages, lo, models)
    payload = encoder.get_compressed().astype("<u4").tobytes()
    sizes = [(int(x.shape[1]), int(x.shape[2]), int(x.shape[0])) for x in images]
    q = model.quality if quality is None else quality
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
    lo, models = _table_models(model)
    words = np.frombuffer(parsed.payload, dtype="<u4").astype(np.uint32)
    read = _reader(constriction.stream.queue.RangeDecoder(words), lo, models)
    latents = []
    try:
        for h, w, c in parsed.sizes:
            latents.append(model.decode_stages((c, h, w), read))
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
    lo, models = _table_models(model)
    sizes = []
    for stages in image_stages(model, images):
        encoder = constriction.stream.queue.RangeEncoder()
        _encode(encoder, stages, lo, models)
        sizes.append(4 * len(encoder.get_compressed()))
    return sizes
