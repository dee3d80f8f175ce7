"""One explored run: the model loaded once, and the answers the page asks of it.

A ``RunSession`` reads only its own run folder (chosen on the command line): ``config.json``, the
weights (``weights_only`` loading), ``stats.jsonl`` / ``metrics.jsonl`` and saved attribute
vectors. What it offers follows the model's declared surface, never its name:

* ``decode(z[, y])``: moving, interpolation, arithmetic, attributes and the map;
* ``encode``: drawings and uploads are encoded (otherwise projected), the map shows encoded
  held-out data and the move sliders follow its principal directions when the latent is large;
* ``ClassConditional`` / ``CaptionConditional``: a class picker / a caption box;
* ``ReadableCodes`` (InfoGAN): a categorical picker and a slider per continuous code
(the capabilities of ``genlab.models.capabilities``).

Expensive pieces (the data, the map, attribute vectors, the feature net) are made on first use,
each once, under its own lock; decoding needs no lock (no_grad forward passes on frozen weights).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import GenlabError
from ..latent.attributes import MEASURES, apply_attribute, arithmetic, attribute_vector
from ..latent.interpolate import interpolate, lerp, slerp
from ..latent.project import project
from ..latent.references import extremes
from ..models.capabilities import CaptionConditional, ClassConditional, Decodes, ReadableCodes, Reconstructs
from ..pictures.run_pictures import has_encoder
from ..runs import load_model, open_run
from ..runs.logs import RECORD_FIELDS, read_jsonl

MOVE_DIMS = 8  # sliders on the Move tab
MAP_POINTS = 1000  # held-out items (or samples) on the Map tab
ATTRIBUTE_K = 40  # examples on each side of a built-in attribute vector


class RunSession:
    def __init__(self, path: str | Path, *, checkpoint: str = "best", vectors: dict[str, Path] | None = None,
                 project_steps: int = 150, project_starts: int = 4):
        self.run = open_run(path)
        self.model, self.config = load_model(self.run, which=checkpoint)
        info = self.config.data_info
        if info is None or info.kind != "image" or len(info.shape) != 3:
            raise GenlabError(f"{self.run.path}: the explorer shows images, and this run models "
                              f"{info.kind if info else 'unknown'} data")
        for p in self.model.parameters():
            p.requires_grad_(False)  # projection's gradients reach z only
        self.shape = tuple(info.shape)
        self.name = self.run.path.name
        self.can_decode = isinstance(self.model, Decodes)
        self.encoder = has_encoder(self.model)
        self.classes = int(self.model.num_classes) if isinstance(self.model, ClassConditional) else 0
        self.class_names = list(info.class_names) if info.class_names else None
        self.captions = isinstance(self.model, CaptionConditional)
        self.layout = self.model.code_layout if isinstance(self.model, ReadableCodes) else None
        self.latent = int(self.model.latent_size) if self.can_decode else 0
        self.project_steps, self.project_starts = project_steps, project_starts
        self._saved = self._read_vectors(vectors or {})
        self._cache: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {k: threading.Lock() for k in
                                                   ("data", "map", "directions", "attributes", "features")}

    # --- what the page may ask -------------------------------------------------------------------
    def describe(self) -> dict:
        layout = self.layout
        return {
            "name": self.name, "model": self.config.model, "data": self.config.data.spec,
            "shape": list(self.shape), "latent": self.latent, "decode": self.can_decode,
            "encoder": self.encoder, "classes": self.classes, "class_names": self.class_names,
            "captions": self.captions,
            "caption_words": self._caption_words() if self.captions else None,
            "codes": None if layout is None else {
                "noise": layout.noise, "categories": layout.categories if layout.cat_codes else 0,
                "cat_start": layout.cat_start, "cont_start": layout.cont_start, "cont": layout.cont_codes},
        }

    def _caption_words(self) -> list[str]:
        return list(self.model.grammar.vocabulary)

    def _lazy(self, key: str, make):
        if key not in self._cache:
            with self._locks[key]:
                if key not in self._cache:
                    self._cache[key] = make()
        return self._cache[key]

    def _need_decode(self) -> None:
        if not self.can_decode:
            raise GenlabError(f"a {self.config.model!r} model has no decode(z): only sampling is available")

    def labels(self, y, n: int) -> Tensor | None:
        """(n,) labels for a conditional model (y: an int or n ints; default 0); None otherwise."""
        if not self.classes:
            return None
        y = torch.as_tensor(0 if y is None else y, dtype=torch.long)
        y = y.expand(n) if y.dim() == 0 else y
        if y.shape != (n,) or int(y.min()) < 0 or int(y.max()) >= self.classes:
            raise GenlabError(f"labels must be {n} integers in 0..{self.classes - 1}")
        return y.to(self.model.device)

    def codes(self, z: Tensor) -> Tensor:
        z = torch.as_tensor(z, dtype=torch.float32)
        z = z.view(1, -1) if z.dim() == 1 else z
        if z.dim() != 2 or z.shape[1] != self.latent:
            raise GenlabError(f"a code has {self.latent} numbers for this model, got shape {tuple(z.shape)}")
        return z.to(self.model.device)

    # --- sampling and decoding -------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, *, seed: int, n: int, label=None, caption: str | None = None,
               category: int | None = None, cont: list[float] | None = None) -> dict:
        g = torch.Generator().manual_seed(seed)
        if caption is not None:
            if not self.captions:
                raise GenlabError(f"a {self.config.model!r} model takes no caption")
            ids = self.model.parse_caption(caption).expand(n, -1)
            drawn = self.model.sample_with_latents(n, y=ids, generator=g)
            return {"x": drawn["x"], "z": drawn["z"] if self.can_decode else None, "y": None}
        y = self.labels(label, n) if (self.classes and label is not None) else None
        if self.layout is not None and (category is not None or cont is not None):
            z = self._with_codes(self.model.prior_sample(n, generator=g), category, cont)
            return {"x": self.model.decode(z), "z": z, "y": None}
        drawn = self.model.sample_with_latents(n, y=y, generator=g)
        keep = self.can_decode and drawn["z"].dim() == 2 and drawn["z"].shape[1] == self.latent
        y_out = drawn.get("y") if self.classes else None
        return {"x": drawn["x"], "z": drawn["z"] if keep else None, "y": y_out}

    def _with_codes(self, z: Tensor, category: int | None, cont: list[float] | None) -> Tensor:
        layout = self.layout
        noise, cat, c = layout.split(z)
        if category is not None:
            if not layout.cat_codes or not 0 <= category < layout.categories:
                raise GenlabError(f"category must be in 0..{layout.categories - 1}")
            cat = cat.clone()
            cat[:, 0] = category
        if cont is not None:
            if len(cont) != layout.cont_codes:
                raise GenlabError(f"give {layout.cont_codes} continuous code values")
            c = torch.tensor(cont, dtype=torch.float32).expand(len(z), -1)
        return layout.compose(noise, cat, c)

    @torch.no_grad()
    def decode(self, z, y=None) -> Tensor:
        self._need_decode()
        z = self.codes(z)
        labels = self.labels(y, len(z))
        return self.model.decode(z) if labels is None else self.model.decode(z, labels)

    def move(self, z, *, offsets: dict[int, float], strengths: dict[str, float], y=None) -> Tensor:
        """The picked code moved along the Move sliders' directions and the attribute vectors."""
        self._need_decode()
        z = self.codes(z)[:1].cpu()
        moves = []
        if offsets:
            directions = self.directions()["vectors"]
            for k, v in offsets.items():
                if not 0 <= k < len(directions):
                    raise GenlabError(f"direction {k} does not exist (0..{len(directions) - 1})")
                moves.append((directions[k], v))
        if strengths:
            vectors = self.attributes()
            for name, s in strengths.items():
                if name not in vectors:
                    raise GenlabError(f"no attribute vector {name!r} (have: {', '.join(vectors)})")
                moves.append((vectors[name], s))
        for vector, s in moves:
            z = apply_attribute(z, vector, torch.tensor([float(s)]))[:, 0]  # (1, D)
        return self.decode(z, y)

    def interpolate(self, a, b, *, steps: int, spherical: bool, y=None, t: float | None = None) -> dict:
        """The codes from a to b (``steps`` of them, ends included), or the one at ``t`` in [0, 1], decoded."""
        self._need_decode()
        a, b = self.codes(a)[:1].cpu(), self.codes(b)[:1].cpu()
        if t is not None:
            path = (slerp if spherical else lerp)(a, b, torch.tensor([min(max(t, 0.0), 1.0)]))[0]
        else:
            path = interpolate(a, b, steps, spherical=spherical)[0]
        return {"x": self.decode(path, y), "z": path}

    def arithmetic(self, a, b, c, y=None) -> Tensor:
        self._need_decode()
        return self.decode(arithmetic(self.codes(a), self.codes(b), self.codes(c)), y)

    # --- data-derived pieces (made once) --------------------------------------------------------
    def data(self):
        from ..runs import data_for_run

        return self._lazy("data", lambda: data_for_run(self.config, None))

    def encode_images(self, x: Tensor) -> Tensor:
        """Codes of images (N, *shape): the encoder's means, or projection for a generator."""
        self._need_decode()
        if self.encoder:
            with torch.no_grad():
                return torch.cat([self.model.encode(b.to(self.model.device)).cpu() for b in x.split(500)])
        got = project(self.model, x, starts=self.project_starts, steps=self.project_steps,
                      feature_net=self.features()[0].net)
        return got["z"].cpu()

    def features(self):
        """(the data set's feature extractor, up to 5000 training images, their features)."""
        from ..evaluation import feature_extractor

        def make():
            fx = feature_extractor(self.data())
            train_x, _ = self.data().tensors("train", limit=5000)
            return fx, train_x, fx.features(train_x)

        return self._lazy("features", make)

    def neighbours(self, x: Tensor, k: int = 4) -> Tensor:
        """The k nearest training images of each image (N, *shape) in feature space -> (N·k, *shape)."""
        fx, train_x, train_f = self.features()
        d = torch.cdist(fx.features(x).float(), train_f.float())  # (N, M)
        idx = d.topk(k, largest=False).indices.flatten()
        return train_x[idx]

    def understand(self, x: Tensor) -> dict:
        """An uploaded or drawn image (1, *shape): its code and the model's version of it (the
        reconstruction, or the projection for a generator); for encoder models its nearest training images."""
        z = self.encode_images(x)
        if self.encoder:
            with torch.no_grad():
                recon = self.model.reconstruct(x.to(self.model.device)) if isinstance(self.model, Reconstructs) \
                    else self.model.decode(z.to(self.model.device))
            return {"z": z, "x": recon.cpu(), "how": "reconstruction", "neighbours": self.neighbours(x)}
        return {"z": z, "x": self.decode(z).cpu(), "how": "projection"}

    def directions(self) -> dict:
        """The Move sliders: the principal directions of encoded held-out data (scaled by their
        standard deviation) when the latent is larger than MOVE_DIMS and there is an encoder; else
        the first latent dimensions as unit vectors."""
        def make():
            self._need_decode()
            if self.encoder and self.latent > MOVE_DIMS:
                z = self.map_data()["z"]
                mean = z.mean(0)
                _, s, v = torch.linalg.svd(z - mean, full_matrices=False)
                scale = s[:MOVE_DIMS] / max(len(z) - 1, 1) ** 0.5
                return {"kind": "pca", "vectors": v[:MOVE_DIMS] * scale.unsqueeze(1),
                        "names": [f"PC {i + 1}" for i in range(len(scale))]}
            k = min(MOVE_DIMS, self.latent)
            return {"kind": "dims", "vectors": torch.eye(self.latent)[:k], "names": [f"z[{i}]" for i in range(k)]}

        return self._lazy("directions", make)

    def attributes(self) -> dict[str, Tensor]:
        """Built-in vectors (thickness, slant: items from the upper minus the lower half of held-out
        data, encoded; without an encoder, extremes among decoded prior samples) and the vectors
        saved with ``genlab attribute --save``."""
        def make():
            self._need_decode()
            out = {}
            if self.encoder:
                data = self.data()
                split = "test" if "test" in data.splits else "all"
                for name, measure in MEASURES.items():
                    hi, lo = (extremes(data, measure, split=split, k=ATTRIBUTE_K, highest=h) for h in (True, False))
                    out[name] = attribute_vector(self.encode_images(hi), self.encode_images(lo))
            else:
                g = torch.Generator().manual_seed(0)
                z = self.model.prior_sample(512, generator=g).cpu()
                x = self.decode(z, torch.arange(512) % self.classes if self.classes else None).cpu()
                for name, measure in MEASURES.items():
                    order = measure(x).argsort(descending=True)
                    out[name] = attribute_vector(z[order[:ATTRIBUTE_K]], z[order[-ATTRIBUTE_K:]])
            return {**out, **self._saved}

        return self._lazy("attributes", make)

    def _read_vectors(self, files: dict[str, Path]) -> dict[str, Tensor]:
        found = {p.stem: p for p in sorted(self.run.path.glob("*.npz"))}
        out = {}
        for name, path in {**found, **files}.items():
            try:
                with np.load(path, allow_pickle=False) as f:
                    vector = torch.from_numpy(np.asarray(f["vector"], dtype=np.float32)).flatten()
            except (OSError, KeyError, ValueError):
                continue  # not a saved attribute vector
            if self.can_decode and vector.numel() == self.latent:
                out[name] = vector
        return out

    # --- the map ---------------------------------------------------------------------------------
    def map_data(self) -> dict:
        """Codes of held-out data (encoders) or prior samples (generators), their 2-D coordinates
        (the latent itself when 2-D, else PCA), labels and images."""
        def make():
            self._need_decode()
            if self.encoder:
                data = self.data()
                x, y = data.tensors("test" if "test" in data.splits else "all", limit=MAP_POINTS)
                z = self.encode_images(x)
            else:
                g = torch.Generator().manual_seed(0)
                z = self.model.prior_sample(MAP_POINTS, generator=g).cpu()
                y = torch.arange(MAP_POINTS) % self.classes if self.classes else None
                x = self.decode(z, y).cpu()
                if y is None and self.features()[0].has_classifier:
                    y = self.features()[0].probs(x).argmax(1)
            mean = z.mean(0)
            if self.latent == 2:
                axes = torch.eye(2)
            else:
                axes = torch.linalg.svd(z - mean, full_matrices=False)[2][:2]  # (2, D)
            xy = (z - mean) @ axes.T if self.latent != 2 else z
            if self.latent == 2:
                mean = torch.zeros(2)
            return {"z": z, "x": x, "y": y, "xy": xy, "mean": mean, "axes": axes}

        return self._lazy("map", make)

    def map_point(self, u: float, v: float, y=None) -> Tensor:
        m = self.map_data()
        z = m["mean"] + u * m["axes"][0] + v * m["axes"][1]
        return self.decode(z, y)

    # --- the record --------------------------------------------------------------------------------
    def record(self, max_points: int = 400) -> dict:
        """Curves from stats.jsonl and metrics.jsonl (each series thinned to ``max_points``) and the config."""
        series: dict[str, dict[str, list]] = {}
        for file in (self.run.stats, self.run.metrics):
            rows = read_jsonl(file)
            keys = {k for r in rows for k, v in r.items()
                    if k not in RECORD_FIELDS and isinstance(v, int | float)
                    and not isinstance(v, bool)}
            for key in sorted(keys):
                pts = [(r["step"], float(r[key])) for r in rows if isinstance(r.get(key), int | float)
                       and "step" in r and np.isfinite(r[key])]
                stride = max(1, len(pts) // max_points)
                pts = pts[::stride]
                series[f"{file.stem}/{key}"] = {"step": [p[0] for p in pts], "value": [p[1] for p in pts]}
        import json

        return {"curves": series, "config": json.loads(self.run.config_file.read_text())}
