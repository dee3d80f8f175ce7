"""Feature networks trained on the data set itself: FID-style metrics with no downloaded weights.

Sample-quality metrics (Fréchet distance, KID, precision/recall, density/coverage, IS) compare
real and generated data in the feature space of a fixed network. The usual choice, ImageNet
Inception-v3 (Heusel et al. 2017, "GANs trained by a two time-scale update rule..."), needs a
download and knows nothing about 28x28 digits, so genlab trains a small network per data set
instead, once, and caches it under the data's content hash:

* labelled images: a small CNN classifier (3 conv stages of 32-64-128 channels, stride 2 until
  the map is about 4-8 pixels, pooled to 4x4, a 128-d linear feature layer, then the logits),
  trained for a short fixed budget with small random shifts as augmentation. Features are the
  128-d layer (before its ReLU); ``probs`` are the classifier's softmax, used by the Inception
  score. The held-out test accuracy is stored with the weights (mnist5k: about 98%).
* unlabelled images: a convolutional autoencoder with the same encoder, trained the same short
  way to reconstruct its input (mean squared error). Features are the encoder's 128-d code:
  what the image must contain to be redrawn, with no notion of class. There is no classifier,
  so there is no Inception score for unlabelled data.
* points (kind "points"): the coordinates themselves; nothing is trained.

Values are therefore comparable between models evaluated on the same data set (same cache
key), never with published FIDs computed with Inception features.

The cache file ``features-<key>.pt`` (``key`` hashes the data fingerprint and ``ARCH_VERSION``)
holds the constructor arguments, the state dict and the test accuracy; it is written atomically
and a corrupt file is retrained and overwritten. Extractors and real-data features are also
memoised in-process, so repeated evaluations during training cost only the samples.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.base import DataSet
from ..errors import GenlabError
from ..runs.checkpoint import save_checkpoint

log = logging.getLogger(__name__)

ARCH_VERSION = "featnet-v2"  # bump whenever the network or its training changes: old caches are ignored
FEATURE_DIM = 128
TRAIN_LIMIT = 20_000  # at most this many training images (large folders)
BATCH_SIZE = 128
EPOCHS = 10  # the budget: about this many epochs, clamped to [MIN_STEPS, MAX_STEPS] steps
MIN_STEPS, MAX_STEPS = 150, 400
LR = 3e-3

_MEMO: dict[tuple[str, str], FeatureExtractor] = {}
_REAL: dict[tuple, FeatureSet] = {}


def _num_downsamples(h: int, w: int) -> int:
    """Stride-2 stages that bring the smaller side to about 4-8 pixels (1 to 3)."""
    return max(1, min(3, int(math.log2(max(min(h, w), 8) / 4))))


class FeatureNet(nn.Module):
    """Conv encoder (N, C, H, W) -> (N, feature_dim), plus a classifier head or a decoder.

    ``num_classes > 0``: logits = head(features); ``num_classes == 0``: an autoencoder whose
    decoder maps the features back to (N, C, H, W) in [0, 1].
    """

    def __init__(self, channels: int, height: int, width: int, num_classes: int = 0,
                 feature_dim: int = FEATURE_DIM):
        super().__init__()
        n = _num_downsamples(height, width)
        strides = [2] * n + [1] * (3 - n)
        chans = [channels, 32, 64, 128]
        layers: list[nn.Module] = []
        for a, b, s in zip(chans[:-1], chans[1:], strides, strict=True):
            layers += [nn.Conv2d(a, b, 3, stride=s, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
        self.encoder = nn.Sequential(
            *layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128 * 16, feature_dim))
        self.shape = (channels, height, width)
        # per-dimension mean and std of the training features: ``forward`` returns z-scores, so
        # kernels (KID's cubic) and distances see O(1) values whatever the layer's scale
        self.register_buffer("feat_mean", torch.zeros(feature_dim))
        self.register_buffer("feat_std", torch.ones(feature_dim))
        if num_classes > 0:
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(feature_dim, num_classes))
        else:
            self.start = (64, math.ceil(height / 2**n), math.ceil(width / 2**n))
            self.fc = nn.Sequential(nn.Linear(feature_dim, math.prod(self.start)), nn.ReLU())
            up = [*[64, 32, 16][:n], channels]
            dec: list[nn.Module] = []
            for a, b in zip(up[:-1], up[1:], strict=True):
                dec += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
            self.decoder = nn.Sequential(*dec[:-1])

    @property
    def classifier(self) -> bool:
        return hasattr(self, "head")

    def raw(self, x: Tensor) -> Tensor:
        return self.encoder(x * 2 - 1)  # (N, C, H, W) in [0, 1] -> (N, F), as trained

    def forward(self, x: Tensor) -> Tensor:
        return (self.raw(x) - self.feat_mean) / self.feat_std  # (N, F) standardised features

    def hidden(self, x: Tensor, stages: int = 3) -> list[Tensor]:
        """The activations after the first ``stages`` conv stages' ReLUs, [(N, 32, ..), (N, 64, ..), (N, 128, ..)]:
        the layers a feature-consistent loss compares (Hou et al. 2017 use VGG's relu1_1, relu2_1, relu3_1);
        the stages after the last one asked for are not computed. ``stages=4`` adds the standardised
        feature layer (N, feature_dim), the deepest one (as Hou et al.'s VGG345 reaches relu5_1)."""
        out, h = [], x * 2 - 1
        for layer in self.encoder:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                out.append(h)
            if len(out) == stages:
                return out
        return out + [(h - self.feat_mean) / self.feat_std] if stages == 4 else out

    def logits(self, f: Tensor) -> Tensor:
        return self.head(f * self.feat_std + self.feat_mean)  # standardised (N, F) -> (N, K)

    def decode(self, f: Tensor) -> Tensor:
        out = self.decoder(self.fc(f).view(-1, *self.start))  # raw (N, F) -> (N, C, >=H, >=W)
        return torch.sigmoid(out[:, :, : self.shape[1], : self.shape[2]])


class FrozenFeatures(nn.Module):
    """A ``FeatureNet`` inside a model, for its loss: never trained, always in eval mode (BatchNorm
    keeps its statistics), saved with the model so sampling needs no data. ``prepare(data)`` fills it."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int = 0, stages: int = 3):
        super().__init__()
        self.stages = stages  # how many conv stages' activations the loss compares (1-3; 4: and the features)
        self.net = FeatureNet(channels, height, width, num_classes).eval().requires_grad_(False)
        self.register_buffer("ready", torch.tensor(False))

    def train(self, mode: bool = True) -> FrozenFeatures:
        return super().train(False)

    def load_from(self, data: DataSet, *, seed: int = 1) -> None:
        """Copy in the network trained on ``data`` with ``seed`` (cached; trained on first use)."""
        net, _ = cached_feature_net(data, seed=seed, device="cpu", autoencoder=not self.net.classifier)
        if net.state_dict().keys() != self.net.state_dict().keys():
            raise GenlabError(f"the feature network of {data.name} does not fit this model (classes differ)")
        self.net.load_state_dict(net.state_dict())
        self.ready.fill_(True)

    def forward(self, x: Tensor) -> list[Tensor]:
        if not bool(self.ready):
            raise GenlabError("the feature-consistent loss has no feature network yet (the trainer's "
                              "prepare(data) loads it)")
        return self.net.hidden(x, self.stages)


@dataclass
class FeatureSet:
    """Features (N, F) float32 on the CPU, and class probabilities (N, K) when there is a classifier."""

    features: Tensor
    probs: Tensor | None = None

    def __len__(self) -> int:
        return int(self.features.shape[0])


class FeatureExtractor:
    """A frozen feature map for one data set: ``features(x)``, ``probs(x)``, ``num_features``.

    ``net`` None means identity features (points). ``fingerprint`` identifies the feature map
    (data fingerprint + architecture version): the key of its caches.
    """

    def __init__(self, net: FeatureNet | None, *, shape: tuple[int, ...], fingerprint: str,
                 test_accuracy: float | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 500):
        self.shape, self.fingerprint, self.batch_size = tuple(shape), fingerprint, batch_size
        self.test_accuracy = test_accuracy
        self.device = torch.device(device)
        self.net = net.to(self.device).eval().requires_grad_(False) if net is not None else None

    @property
    def kind(self) -> str:
        if self.net is None:
            return "identity"
        return "classifier" if self.net.classifier else "autoencoder"

    @property
    def has_classifier(self) -> bool:
        return self.net is not None and self.net.classifier

    @property
    def num_features(self) -> int:
        return math.prod(self.shape) if self.net is None else self.net.encoder[-1].out_features

    def _check(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.shape:
            raise GenlabError(f"the feature network expects items of shape {self.shape}, "
                              f"got a batch of shape {tuple(x.shape)}")

    @torch.no_grad()
    def feature_set(self, x: Tensor) -> FeatureSet:
        """Features and probabilities in one batched pass (no grad, eval mode)."""
        self._check(x)
        if self.net is None:
            return FeatureSet(x.detach().float().cpu().reshape(len(x), -1))
        feats, probs = [], []
        for xb in x.split(self.batch_size):
            f = self.net(xb.to(self.device, torch.float32))  # (B, F)
            feats.append(f.cpu())
            if self.net.classifier:
                probs.append(self.net.logits(f).softmax(1).cpu())  # (B, K)
        return FeatureSet(torch.cat(feats), torch.cat(probs) if probs else None)

    def features(self, x: Tensor) -> Tensor:
        """(N, *shape) -> (N, num_features) float32."""
        return self.feature_set(x).features

    def probs(self, x: Tensor) -> Tensor | None:
        """(N, *shape) -> (N, K) softmax class probabilities, or None without a classifier."""
        return self.feature_set(x).probs if self.has_classifier else None


# --- training ------------------------------------------------------------------------------------
def _shift(x: Tensor, gen: torch.Generator, max_shift: int) -> Tensor:
    """Each image moved by its own random whole-pixel offset in [-max_shift, max_shift]², edges repeated."""
    n, _, h, w = x.shape
    d = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=gen).to(x)  # (N, 2) pixels
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = d[:, 0] * 2 / w, d[:, 1] * 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)


def _split_or_all(data: DataSet, split: str, limit: int | None = None) -> tuple[Tensor, Tensor | None]:
    return data.tensors(split if split in data.splits else "all", limit=limit)


def train_feature_net(data: DataSet, *, seed: int = 0, device: str | torch.device = "cpu",
                      autoencoder: bool = False) -> tuple[FeatureNet, dict, float | None]:
    """Train the network for ``data``: (net, constructor kwargs, test accuracy or None).
    ``autoencoder``: the autoencoder even for labelled data (features that keep what redraws the image)."""
    x, y = _split_or_all(data, "train", TRAIN_LIMIT)
    labelled = not autoencoder and y is not None and (data.num_classes or int(y.max()) + 1) > 1
    c, h, w = data.shape
    kwargs = {"channels": c, "height": h, "width": w,
              "num_classes": int(data.num_classes or int(y.max()) + 1) if labelled else 0,
              "feature_dim": FEATURE_DIM}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(**kwargs).to(device)
    gen = torch.Generator().manual_seed(seed)
    bs = min(BATCH_SIZE, len(x))
    steps = min(MAX_STEPS, max(MIN_STEPS, math.ceil(EPOCHS * len(x) / bs)))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, total_steps=steps)
    max_shift = max(1, round(min(h, w) / 14))
    what = "classifier" if labelled else "autoencoder"
    log.info("training the %s feature network for %s: %d steps of %d", what, data.name, steps, bs)
    net.train()
    perm, pos = torch.randperm(len(x), generator=gen), 0
    bar = tqdm(range(steps), desc=f"feature net ({what})", leave=False, disable=None)
    for _ in bar:
        if pos + bs > len(x):
            perm, pos = torch.randperm(len(x), generator=gen), 0
        idx, pos = perm[pos:pos + bs], pos + bs
        xb = _shift(x[idx], gen, max_shift).to(device)  # (B, C, H, W)
        f = net.raw(xb)
        if labelled:
            loss = F.cross_entropy(net.head(f), y[idx].to(device))
        else:
            loss = F.mse_loss(net.decode(f), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    net.eval()
    with torch.no_grad():
        f = torch.cat([net.raw(xb.to(device)) for xb in x.split(500)])  # (N, F)
        net.feat_mean.copy_(f.mean(0))
        net.feat_std.copy_(f.std(0, correction=int(len(f) > 1)).clamp_min(1e-6))  # one item: 0, not NaN
    acc = _test_accuracy(net, data, device) if labelled else None
    if acc is not None:
        log.info("feature network test accuracy on %s: %.4f", data.name, acc)
    return net, kwargs, acc


@torch.no_grad()
def _test_accuracy(net: FeatureNet, data: DataSet, device) -> float | None:
    split = next((s for s in ("test", "val") if s in data.splits and len(data.splits[s])), None)
    if split is None:
        return None
    x, y = data.tensors(split, limit=TRAIN_LIMIT)
    pred = torch.cat([net.logits(net(xb.to(device))).argmax(1).cpu() for xb in x.split(500)])
    return float((pred == y).float().mean())


# --- cache ---------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    return Path(os.environ.get("GENLAB_CACHE") or Path.home() / ".cache" / "genlab")


def _load(path: Path, device) -> tuple[FeatureNet, float | None] | None:
    """The cached network, or None when the file is missing, corrupt or from another version."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("arch") != ARCH_VERSION:
            raise ValueError(f"architecture {state.get('arch')!r}, expected {ARCH_VERSION!r}")
        net = FeatureNet(**state["kwargs"])
        net.load_state_dict(state["state_dict"])
        acc = state.get("test_accuracy")
        return net.to(device), None if acc is None else float(acc)
    except Exception as e:  # a truncated or foreign file must not stop an evaluation
        log.warning("feature-network cache %s is unusable (%s): retraining it", path, e)
        return None


def _cache_key(data: DataSet) -> str:
    return hashlib.sha256(f"{data.fingerprint()}:{ARCH_VERSION}".encode()).hexdigest()[:16]


def cached_feature_net(data: DataSet, *, seed: int = 0, cache_dir: str | Path | None = None,
                       device: str | torch.device = "cpu", autoencoder: bool = False
                       ) -> tuple[FeatureNet, float | None]:
    """The network trained on ``data`` with ``seed`` (0: the evaluation's), from the disk cache or
    trained and cached: (net, test accuracy or None). Another seed is another, independent network
    (a training loss uses seed 1, so the metrics do not judge a model by the network it was trained on).
    ``autoencoder``: the autoencoder network even for labelled data (cached apart, "-ae")."""
    key = _cache_key(data) + ("" if seed == 0 else f"-seed{seed}") + ("-ae" if autoencoder else "")
    path = Path(cache_dir or default_cache_dir()) / f"features-{key}.pt"
    loaded = _load(path, device)
    if loaded is not None:
        log.info("loaded the feature network of %s from %s", data.name, path)
        return loaded
    net, kwargs, acc = train_feature_net(data, seed=seed, device=device, autoencoder=autoencoder)
    state = {"arch": ARCH_VERSION, "kwargs": kwargs, "test_accuracy": acc, "data": data.name, "seed": seed,
             "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    try:
        save_checkpoint(path, state)  # temp file in the same folder, fsync, rename
        log.info("cached the feature network of %s in %s", data.name, path)
    except OSError as e:
        log.warning("could not cache the feature network in %s: %s", path, e)
    return net, acc


def feature_extractor(data: DataSet, *, cache_dir: str | Path | None = None,
                      device: str | torch.device = "cpu") -> FeatureExtractor:
    """The feature map of ``data``: loaded from the memo or the disk cache, else trained and cached."""
    key = _cache_key(data)
    memo_key = (key, str(torch.device(device)))
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    if data.kind == "points":
        fx = FeatureExtractor(None, shape=data.shape, fingerprint=key, device=device)
    elif data.kind == "image" and len(data.shape) == 3:
        net, acc = cached_feature_net(data, cache_dir=cache_dir, device=device)
        fx = FeatureExtractor(net, shape=data.shape, fingerprint=key, test_accuracy=acc, device=device)
    else:
        raise GenlabError(f"no feature network for data of kind {data.kind!r} and shape {data.shape}")
    _MEMO[memo_key] = fx
    return fx


def real_features(extractor: FeatureExtractor, data: DataSet, split: str, n: int | None = None,
                  *, seed: int = 0) -> FeatureSet:
    """Features of (a fixed random subset of ``n`` items of) a split, memoised in-process."""
    key = (extractor.fingerprint, data.fingerprint(), split, n, seed)
    if key not in _REAL:
        x, _ = data.tensors(split, limit=n, seed=seed)
        _REAL[key] = extractor.feature_set(x)
    return _REAL[key]


def clear_memo() -> None:
    """Forget in-process extractors and real features (the disk cache stays)."""
    _MEMO.clear()
    _REAL.clear()
