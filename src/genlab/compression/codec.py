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
batches of consecutive same-size images (at most ``format.MAX_IMAGE_PIXELS`` pixels a batch), exactly
as ``model.reconstruct`` does on that batch. A payload is accepted only if it is exactly what the
encoder writes for the integers it decodes to: the range decoder reads zeros past the end of its data,
so a truncated or padded stream would otherwise decode to a plausible image.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

import constriction
import numpy as np
import torch
from torch import Tensor

from ..config import lasting_dict
from ..errors import GenlabError
from ..models.entropy import PMF_BITS
from . import format as glc

FLUSH_BITS = 64  # the range coder's end-of-stream cost: at most two 32-bit words
RATE_TOLERANCE = 0.02  # payload <= (1 + 2%) * estimated bits + FLUSH_BITS


def model_identity(model) -> bytes:
    """8 bytes of SHA-256 over the codec's config, data shape, weights and integer tables. The config is its
    ``lasting_dict``, so a field added to the codec later does not change the identity of the files made before."""
    h = hashlib.sha256()
    h.update(json.dumps({"config": lasting_dict(model.config), "shape": list(model.data_info.shape)},
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


def _batches(sizes: Sequence[tuple]) -> list[tuple[int, int]]:
    """(start, stop) of the batches g_a / g_s see: runs of consecutive equal sizes, each cut to at most
    ``format.MAX_IMAGE_PIXELS`` pixels (one image at least), so memory stays bounded on any file."""
    out, start = [], 0
    for i in range(1, len(sizes) + 1):
        full = (i - start + 1) * math.prod(sizes[start][-2:]) > glc.MAX_IMAGE_PIXELS
        if i == len(sizes) or sizes[i] != sizes[start] or full:
            out.append((start, i))
            start = i
    return out


def _check_sizes(model, sizes: Sequence[tuple[int, int, int]], *, source: str | None = None) -> None:
    """GenlabError unless this codec codes images of these (C, H, W): its channel count, and for an MLP
    codec its one size (a conv codec pads any size to its stride)."""
    shape = tuple(model.data_info.shape)
    if not model.is_image:
        raise GenlabError("only image codecs write .glc files")
    where = f"{source} is corrupt: image" if source else "image"
    for i, size in enumerate(sizes):
        if len(size) != 3 or size[0] != shape[0]:
            raise GenlabError(f"{where} {i} has shape {tuple(size)}; this codec codes {shape[0]}-channel "
                              "images (C, H, W)")
        if not model.conv and tuple(size) != shape:
            raise GenlabError(f"{where} {i} is {tuple(size)}: an MLP codec only codes {shape} images")


@torch.no_grad()
def image_stages(model, images: Sequence[Tensor]) -> list:
    """Each image's coding stages, computed in the same batches that ``model.reconstruct`` sees."""
    out: list = []
    for a, b in _batches([tuple(x.shape) for x in images]):
        out += model.symbol_stages(torch.stack(list(images[a:b])).to(model.device))
    return out


def _encode(encoder, stages, lo: np.ndarray, models: list) -> None:
    for ids, values in stages:
        for t in np.unique(ids):  # table by table, each table's integers in their order
            encoder.encode((values[ids == t] - lo[t]).astype(np.int32), models[t])


def _reader(decoder, lo: np.ndarray, models: list, stages: list):
    """``read(ids) -> values`` for ``Codec.decode_stages``; appends each (ids, values) to ``stages``."""
    def read(ids: np.ndarray) -> np.ndarray:
        values = np.empty(len(ids), dtype=np.int64)
        for t in np.unique(ids):
            mask = ids == t
            values[mask] = decoder.decode(models[t], int(mask.sum())).astype(np.int64) + lo[t]
        stages.append((ids, values))
        return values

    return read


def compress(model, images: Sequence[Tensor], *, names: Sequence[str] | None = None,
             quality: int | None = None) -> bytes:
    """Images (C, H, W) in [0, 1] -> the bytes of a .glc file."""
    _check_sizes(model, [tuple(x.shape) for x in images])
    sizes = [(int(x.shape[1]), int(x.shape[2]), int(x.shape[0])) for x in images]
    glc.check_sizes(sizes)
    names = list(names) if names is not None else [f"image{i:04d}" for i in range(len(images))]
    glc.check_names(names)
    model.eval()
    lo, models = _table_models(model)
    encoder = constriction.stream.queue.RangeEncoder()
    for stages in image_stages(model, images):
        _encode(encoder, stages, lo, models)
    payload = encoder.get_compressed().astype("<u4").tobytes()
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
    """The bytes of a .glc file -> (images (C, H, W) in [0, 1], names). A variable-rate codec is set to the
    quality stored in the file (``model.set_quality``).

    Every check runs before g_s (the step whose memory grows with pixels): the header's limits
    (``format.unpack``), the model, the sizes this model codes, and the payload, which must be exactly
    what the range coder writes for the integers it decodes to (no word missing, none left over)."""
    parsed = glc.unpack(data, source=source)
    check_model(model, parsed, source=source)
    if len(model.qualities) > 1:  # a variable-rate codec decodes at the quality the file was coded at
        if parsed.quality not in model.qualities:
            raise GenlabError(f"{source} is corrupt: it says quality {parsed.quality}, and its model codes at "
                              f"{', '.join(map(str, model.qualities))}")
        model.set_quality(parsed.quality)
    chw = [(c, h, w) for h, w, c in parsed.sizes]
    _check_sizes(model, chw, source=source)
    model.eval()
    lo, models = _table_models(model)
    words = np.frombuffer(parsed.payload, dtype="<u4").astype(np.uint32)
    stages: list = []
    read = _reader(constriction.stream.queue.RangeDecoder(words), lo, models, stages)
    encoder = constriction.stream.queue.RangeEncoder()  # re-codes what is decoded, to hold it against the payload
    latents = []
    for size in chw:
        try:
            latents.append(model.decode_stages(size, read))
        except Exception as err:  # noqa: BLE001  (constriction raises plain errors on bad streams)
            raise GenlabError(f"{source} is corrupt (the payload does not decode: {err})") from None
        _encode(encoder, stages, lo, models)
        stages.clear()
        if encoder.num_words() > len(words) + 1:  # sealing adds 1 or 2 words: the stream already outruns the payload
            break
    if len(latents) < len(chw) or not np.array_equal(encoder.get_compressed(), words):
        raise GenlabError(f"{source} is corrupt (the payload does not end where the coded stream of its "
                          f"{len(chw)} image(s) ends: {len(parsed.payload)} bytes)")
    images: list[Tensor] = []
    for a, b in _batches(chw):
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
    for a, b in _batches([tuple(x.shape) for x in images]):
        estimate += float(model.estimated_bits(torch.stack(list(images[a:b])).to(model.device)).sum())
    limit = (1 + RATE_TOLERANCE) * estimate + FLUSH_BITS
    return {"images": len(images), "estimated_bits": estimate, "payload_bits": payload_bits,
            "file_bits": 8 * len(data), "limit_bits": limit, "ok": payload_bits <= limit}


@torch.no_grad()
def payload_bytes_per_image(model, images: Sequence[Tensor]) -> list[int]:
    """Payload bytes of each image coded alone (its own stream, flush included): the honest
    per-image rate for rate–distortion curves."""
    _check_sizes(model, [tuple(x.shape) for x in images])
    model.eval()
    lo, models = _table_models(model)
    sizes = []
    for stages in image_stages(model, images):
        encoder = constriction.stream.queue.RangeEncoder()
        _encode(encoder, stages, lo, models)
        sizes.append(4 * len(encoder.get_compressed()))
    return sizes
