"""StackGAN (Zhang et al. 2017): caption-conditional generation in two stages, with conditioning augmentation.

    caption ids (N, S) --text encoder (bag of words)--> mu, log sigma^2 (N, cond_dim)
    c = mu + sigma * eps                                 conditioning augmentation, KL(N(mu, sigma) || N(0, I))
    stage I:  z (N, latent) ++ c --g1--> x1 (N, C, H/2, W/2)   the low-resolution sketch
    stage II: x1, c (tiled) --g2--> x (N, C, H, W)             refined at full resolution
    d1(x1 | caption), d2(x | caption): projection discriminators on a bag of words (Miyato & Koyama 2018),
        each with an auxiliary classifier naming every caption word (AC-GAN, Odena et al. 2017; TAC-GAN)

Captions come from the data (``genlab.data.captions``): the factors of ``shapes`` ("a small heart,
rotated, top left"), measured stroke width and slant of digits ("a thick, left-slanted seven"), or
the class of any labelled set. Each training caption drops each word with ``word_dropout``, so a
partial caption ("a heart") means "any heart". The critic is matching-aware (Reed et al. 2016): a
real image under another example's caption counts as fake, half-weighted as in StackGAN. Those
negatives alone taught the critics position, not shape: another example's caption almost always names
another quadrant, so position settles nearly every pair. Each critic's auxiliary head therefore also
names the words of real images' captions, and G is trained to have its images named by their own, and
the critics' body pools a shape feature over positions (``WhereWhat``) so shape can be seen anywhere.

Unlike the paper, whose stage II is trained after stage I is frozen, both stages train together
(as in StackGAN++), because the shared trainer runs the same phases every step: the critic phase
updates d1 and d2, the generator phase g1, g2 and the text encoder (which is trained with the
model; no downloaded weights). On 2-D points there is no resolution to halve: stage II refines
stage I's points by a residual. ``sample(n, y=...)`` takes labels (N,), captions (str or a list),
or condition ids (N, S); ``parse_caption(text)`` gives the ids of one caption.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..config import WIDTHS, DataInfo, ModelConfig, option
from ..data.captions import digit_measures, digit_values, grammar_for, shape_values
from ..distributions import DiagonalGaussian
from ..errors import GenlabError
from ..nn.blocks import ConvDecoder, ConvEncoder, Flat, mlp, spectral_normed
from ..registry import MODELS
from .base import GenerativeModel, Phase
from .capabilities import CaptionConditional, ClassConditional


@dataclass(frozen=True)
class StackGANConfig(ModelConfig):
    latent_dim: int = 32
    arch: str = option("auto", "network kind; auto: conv for images, mlp for points", choices=("auto", "mlp", "conv"))
    hidden: tuple[int, ...] = option((256, 256), "MLP widths; the critics' feature width is the last", **WIDTHS,
                                     nonempty=True)
    channels: tuple[int, ...] = option((32, 64), "conv widths per stride-2 stage; stage II works at the first",
                                       **WIDTHS, nonempty=True)
    captions: str = option("auto", "caption grammar (genlab.data.captions)",
                           choices=("auto", "shapes", "digits", "labels"))
    embed_dim: int = option(64, "word embedding width of the text encoder", **WIDTHS)
    cond_dim: int = option(16, "width of the augmented condition c", **WIDTHS)
    # below the paper's 1: a strong KL blurs the condition faster than G learns it
    kl_weight: float = option(0.05, "lambda of the conditioning-augmentation KL, summed over cond_dim", min=0)
    word_dropout: float = option(0.2, "chance that a training caption omits a word", min=0, max=1, max_exclusive=True)
    mismatch: bool = option(True, "matching-aware critic: real images with wrong captions are fakes")
    # without it the projection term learnt position, not shape, and G drew blobs for squares
    aux_weight: float = option(1.0, "weight of the auxiliary classifier (AC-GAN / TAC-GAN): each critic names every "
                                    "caption word of real images, and G is scored on whether its images are named "
                                    "by their caption", min=0)
    loss: str = option("hinge", "adversarial loss", choices=losses.GAN_LOSSES)
    n_critic: int = option(1, "critic steps per generator step", min=1, max=100)
    lr_g: float = option(2e-4, "G's learning rate", min=0, min_exclusive=True)
    # two time-scale update rule (Heusel et al. 2017; SAGAN's 4e-4 for D): the critics' word classifier
    # must learn shape before G can follow it
    lr_d: float = option(4e-4, "the critics' learning rate", min=0, min_exclusive=True)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam's betas", min=0, max=1, max_exclusive=True)
    spectral_norm: bool = option(True, "spectral normalisation of every critic layer")


class TextEncoder(nn.Module):
    """Bag of words -> the Gaussian of the augmented condition: ids (N, S) -> mu, logvar (N, cond_dim)."""

    def __init__(self, vocab: int, embed_dim: int, cond_dim: int):
        super().__init__()
        self.words = nn.Embedding(vocab + 1, embed_dim)  # id 0: an open slot, masked out
        self.fc = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(embed_dim, 2 * cond_dim))

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        h = (self.words(ids) * (ids > 0).unsqueeze(-1)).sum(1)  # (N, E)
        mu, logvar = self.fc(h).chunk(2, dim=1)  # (N, cond_dim) each
        return mu, logvar


class Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width))

    def forward(self, h: Tensor) -> Tensor:
        return F.relu(h + self.body(h))


class RefineConv(nn.Module):
    """Stage II on images: x1 (N, C, h, w) and c (N, cond) -> (N, C, H, W) unbounded, H <= 2h.

    Encode x1, join c tiled over the map, one residual block, upsample x2 (the paper's layout at
    our scale: its 64 -> 16 -> 256 becomes h -> h -> 2h)."""

    def __init__(self, shape: tuple[int, ...], cond_dim: int, width: int):
        super().__init__()
        c, self.h, self.w = shape
        self.encode = nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU())
        self.joint = nn.Sequential(nn.Conv2d(width + cond_dim, width, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU())
        self.residual = Residual(width)
        # one transposed convolution straight to the image, as DCGAN's last layer: a BatchNorm and a
        # 3x3 convolution at full resolution made the whole model 2x slower on a CPU
        self.up = nn.ConvTranspose2d(width, c, 4, stride=2, padding=1)

    def forward(self, x1: Tensor, c: Tensor) -> Tensor:
        h = self.encode(x1 * 2 - 1)  # (N, width, h, w)
        tiled = c[:, :, None, None].expand(-1, -1, *h.shape[2:])  # (N, cond, h, w)
        h = self.residual(self.joint(torch.cat([h, tiled], 1)))  # (N, width, h, w)
        return self.up(h)[:, :, : self.h, : self.w]  # (N, C, H, W)


class RefineMLP(nn.Module):
    """Stage II as an MLP: x1 (N, *shape1) and c -> (N, *shape) unbounded (points: x1 + a residual)."""

    def __init__(self, shape1: tuple[int, ...], shape: tuple[int, ...], cond_dim: int, hidden, *,
                 residual: bool):
        super().__init__()
        self.net = mlp([math.prod(shape1) + cond_dim, *hidden, math.prod(shape)])
        self.shape, self.residual = shape, residual

    def forward(self, x1: Tensor, c: Tensor) -> Tensor:
        out = self.net(torch.cat([x1.flatten(1), c], 1)).view(-1, *self.shape)
        return x1 + out if self.residual else out


class WhereWhat(nn.Module):
    """The critics' body phi on images: (N, C, H, W) -> (N, width + K) features.

    *Where*: ConvEncoder's strided convolutions to a (K, h, w) map, flattened through a linear layer
    (position and size, a weight per map cell). *What*: a 3x3 convolution on the same map, pooled over
    positions, so a shape is the same feature wherever it is (the global pooling of SNGAN's projection
    critic, Miyato & Koyama 2018; max, not its sum: "a corner somewhere" should not grow with the area).
    The flattened map alone must learn each shape once per cell: its caption term told true from
    shape-swapped captions on 61-64% of real test images, its classifier named their shape for 46-51%.
    A spectrally normed shape classifier on real 32x32 shapes, 400 steps of Adam 2e-4: 48% on this
    body's *where* part, 52% with a summed *what* part, 84% with a max-pooled one (squares 67%)."""

    def __init__(self, shape: tuple[int, ...], width: int, channels: tuple[int, ...]):
        super().__init__()
        self.where = ConvEncoder(shape, width, channels)
        with torch.no_grad():
            k = self.where.conv(torch.zeros(1, *shape)).shape[1]
        self.what = nn.Conv2d(k, k, 3, padding=1)  # the receptive field grows to cover a whole shape
        self.act = nn.LeakyReLU(0.2)
        self.features = width + k

    def forward(self, x: Tensor) -> Tensor:
        m = self.where.conv(x)  # (N, K, h, w)
        where = self.act(self.where.fc(m.flatten(1)))  # (N, width)
        what = self.act(self.what(m)).amax((2, 3))  # (N, K)
        return torch.cat([where, what], 1)


class CaptionCritic(nn.Module):
    """D(x | ids) = psi(phi(x)) + <sum of word embeddings, phi(x)>, (N,): a projection critic on captions,
    with an auxiliary head phi(x) -> (N, vocab) of logits naming each caption word (AC-GAN)."""

    def __init__(self, body: nn.Module, features: int, vocab: int, *, image: bool):
        super().__init__()
        self.body, self.image = body, image  # phi: x -> (N, features)
        self.head = nn.Linear(features, 1)  # psi
        self.words = nn.Embedding(vocab + 1, features)
        self.classify = nn.Linear(features, vocab)  # logits per word, a softmax per slot

    def features(self, x: Tensor) -> Tensor:
        return self.body(x * 2 - 1 if self.image else x)  # (N, F)

    def score(self, h: Tensor, ids: Tensor) -> Tensor:
        """Features (N, F) under captions (N, S) -> (N,): one body pass serves several captions."""
        e = (self.words(ids) * (ids > 0).unsqueeze(-1)).sum(1)  # (N, F) bag of words
        return self.head(h).squeeze(1) + (e * h).sum(1)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        return self.score(self.features(x), ids)


@MODELS.register("stackgan", help="StackGAN: two-stage caption-conditional GAN with conditioning augmentation")
class StackGAN(GenerativeModel, ClassConditional, CaptionConditional):
    Config = StackGANConfig
    default_eval_metrics = ("fd", "hq", "modes")  # as the GAN's: fd picks best.pt
    # bf16 autocast where the CPU / GPU has fast bf16 (else fp32), as InfoGAN: a step is cheaper and the
    # caption match grows with steps (figures: docs/models/stackgan.md)
    train_defaults = {"precision": "auto"}

    def __init__(self, config: StackGANConfig, data_info: DataInfo):
        super().__init__(config, data_info)
        if config.n_critic < 1:
            raise GenlabError(f"model.n_critic={config.n_critic} must be at least 1")
        if not 0.0 <= config.word_dropout < 1.0:
            raise GenlabError(f"model.word_dropout={config.word_dropout} must be in [0, 1)")
        self.grammar = grammar_for(config.captions, kind=data_info.kind, num_classes=data_info.num_classes,
                                   class_names=data_info.class_names)
        self.num_classes: int = data_info.num_classes  # ``sample(n, y=labels)`` and the per-class grids
        shape = tuple(data_info.shape)
        conv = len(shape) == 3 and config.arch in ("auto", "conv")
        # stage I's resolution: half the side for images, the points themselves otherwise
        self.shape1 = (shape[0], -(-shape[1] // 2), -(-shape[2] // 2)) if len(shape) == 3 else shape
        vocab, c = len(self.grammar.vocabulary), config
        self.slot_sizes = tuple(len(words) for _, words in self.grammar.slots)  # words per slot
        self.text_encoder = TextEncoder(vocab, c.embed_dim, c.cond_dim)
        z_dim = c.latent_dim + c.cond_dim
        if conv:
            self.g1 = ConvDecoder(z_dim, self.shape1, c.channels, batchnorm=True)
            self.g2 = RefineConv(shape, c.cond_dim, c.channels[0])
        else:
            self.g1 = Flat(mlp([z_dim, *reversed(c.hidden), math.prod(self.shape1)]), out_shape=self.shape1)
            self.g2 = RefineMLP(self.shape1, shape, c.cond_dim, c.hidden, residual=not self.is_image)
        self.d1 = CaptionCritic(*self._d_body(self.shape1, conv), vocab, image=self.is_image)
        self.d2 = CaptionCritic(*self._d_body(shape, conv), vocab, image=self.is_image)
        if c.spectral_norm:
            spectral_normed(self.d1), spectral_normed(self.d2)
        # digits: the stroke-width terciles of the training data, tracked like BatchNorm's statistics
        self.register_buffer("width_edges", torch.full((2,), float("nan")))

    def _d_body(self, shape: tuple[int, ...], conv: bool) -> tuple[nn.Module, int]:
        c, width = self.config, self.config.hidden[-1]
        leaky = functools.partial(nn.LeakyReLU, 0.2)
        if conv:
            body = WhereWhat(shape, width, tuple(c.channels))
            return body, body.features
        return Flat(mlp([math.prod(shape), *c.hidden], act=leaky, final_act=True)), width

    def phases(self) -> list[Phase]:
        c = self.config
        critic = lambda: itertools.chain(self.d1.parameters(), self.d2.parameters())  # noqa: E731
        generator = lambda: itertools.chain(self.text_encoder.parameters(), self.g1.parameters(),  # noqa: E731
                                            self.g2.parameters())
        return [Phase("critic", critic, lr=c.lr_d, betas=tuple(c.betas), repeat=c.n_critic),
                Phase("generator", generator, lr=c.lr_g, betas=tuple(c.betas))]

    # --- conditions ------------------------------------------------------------------------------
    def parse_caption(self, text: str) -> Tensor:
        """One caption -> its condition ids (S,); an unknown word is a GenlabError with the vocabulary."""
        return self.grammar.parse(text)

    def batch_conditions(self, batch: dict[str, Tensor]) -> Tensor:
        """The training captions of a batch as ids (N, S), words dropped at random in training."""
        name = self.grammar.name
        if "y" not in batch:
            raise GenlabError("stackgan needs labelled data, and this batch has no labels")
        if name == "shapes":
            if "factors" not in batch:
                raise GenlabError("shapes captions are built from the factors of the shapes data set; "
                                  "this batch has none (use --set model.captions=labels)")
            values = shape_values(batch["factors"])  # (N, 5)
        elif name == "digits":
            values = digit_values(batch["x"], batch["y"], self._width_edges(batch["x"]))  # (N, 3)
        else:
            values = batch["y"].long().unsqueeze(1)  # (N, 1)
        if self.training and self.config.word_dropout:
            drop = torch.rand(values.shape) < self.config.word_dropout
            values = values.masked_fill(drop.to(values.device), -1)
        return self.grammar.ids(values)

    @torch.no_grad()
    def _width_edges(self, x: Tensor) -> Tensor:
        """(2,) stroke-width terciles: the batch's first, then a moving average (momentum 0.01)."""
        width, _ = digit_measures(x)
        q = width.quantile(torch.tensor([1 / 3, 2 / 3], device=width.device))
        if self.training:
            known = torch.isfinite(self.width_edges).all()
            self.width_edges.copy_(self.width_edges.lerp(q, 0.01) if known else q)
        return self.width_edges if torch.isfinite(self.width_edges).all() else q

    def sample_conditions(self, n: int, y) -> Tensor:
        """Condition ids (n, S) from None (classes 0..K-1 in turn), labels (an int or (n,)), a caption
        or a list of n captions, or condition ids (1, S) or (n, S) (a 1-D tensor is labels)."""
        g, k = self.grammar, self.num_classes
        if isinstance(y, str):
            y = g.parse(y)[None]
        elif isinstance(y, list | tuple) and y and isinstance(y[0], str):
            y = torch.stack([g.parse(t) for t in y])
        if y is None:
            y = torch.arange(n) % k
        y = torch.as_tensor(y, dtype=torch.long).cpu()
        if y.dim() <= 1:  # labels
            y = y.expand(n) if y.dim() == 0 else y
            if y.shape != (n,):
                raise GenlabError(f"expected one label or {n} labels, got a tensor of shape {tuple(y.shape)}")
            if len(y) and (y.min() < 0 or y.max() >= k):
                raise GenlabError(f"labels must be in 0..{k - 1}, got {y.min().item()}..{y.max().item()}")
            return g.from_labels(y).to(self.device)
        ids = y.expand(n, -1) if y.shape[0] == 1 else y
        if ids.shape != (n, g.num_slots):
            raise GenlabError(f"expected condition ids of shape ({n}, {g.num_slots}), got {tuple(ids.shape)}")
        lo = g.offsets() + 1
        hi = lo + torch.tensor([len(words) for _, words in g.slots]) - 1
        if not ((ids == 0) | ((ids >= lo) & (ids <= hi))).all():
            raise GenlabError("condition ids do not fit this model's caption slots (see parse_caption)")
        return ids.to(self.device)

    # --- the two stages ------------------------------------------------------------------------------
    def generate(self, z: Tensor, ids: Tensor, eps: Tensor) -> dict[str, Tensor]:
        """z (N, latent), ids (N, S), eps (N, cond) -> stage-I x1, stage-II x and the condition's mu, logvar."""
        mu, logvar = self.text_encoder(ids)  # (N, cond) each
        c = mu + torch.exp(0.5 * logvar) * eps  # conditioning augmentation
        x1 = self.g1(torch.cat([z, c], 1))  # (N, *shape1), unbounded
        if self.is_image:
            x1 = (torch.tanh(x1) + 1) / 2
        x = self.g2(x1, c)  # (N, *shape)
        if self.is_image:
            x = (torch.tanh(x) + 1) / 2
        return {"x": x, "x1": x1, "mu": mu, "logvar": logvar}

    def low_res(self, x: Tensor) -> Tensor:
        """Real data at stage I's resolution: images (N, C, H, W) -> (N, C, H/2, W/2), points unchanged."""
        if not self.is_image:
            return x
        return F.interpolate(x, size=self.shape1[1:], mode="bilinear", align_corners=False, antialias=True)

    def _noise(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        eps = torch.randn(n, self.config.cond_dim, generator=generator).to(self.device)
        return self.prior_sample(n, generator), eps

    def loss(self, phase, batch, *, step=0):
        x, c = batch["x"], self.config
        ids = self.batch_conditions(batch)  # (N, S)
        z, eps = self._noise(x.shape[0])
        stages = ((self.d1, self.low_res(x), "x1"), (self.d2, x, "x"))
        if phase == "critic":
            with torch.no_grad():
                fake = self.generate(z, ids, eps)
            total, out = 0.0, {}
            for i, (critic, real, key) in enumerate(stages, start=1):
                h_real, h_fake = critic.features(torch.cat([real, fake[key]])).chunk(2)  # (N, F) each
                d_real, d_fake = critic.score(h_real, ids), critic.score(h_fake, ids)  # (N,) each
                out[f"d{i}_real"], out[f"d{i}_fake"] = d_real.mean().detach(), d_fake.mean().detach()
                if c.mismatch:  # real images under the next example's caption count as fakes
                    d_wrong = critic.score(h_real, ids.roll(1, 0))  # (N,)
                    d_fake = torch.cat([d_fake, d_wrong])  # the fakes' half-weight, as in StackGAN
                    out[f"d{i}_wrong"] = d_wrong.mean().detach()
                total = total + losses.gan_d_loss(c.loss, d_real, d_fake)
                if c.aux_weight:  # the classifier learns on real images only: fakes would teach it G's errors
                    aux = losses.caption_classification(critic.classify(h_real), ids, self.slot_sizes)
                    total, out[f"d{i}_aux"] = total + c.aux_weight * aux, aux.detach()
            return {"loss": total, **out}
        if phase == "generator":
            fake = self.generate(z, ids, eps)
            kl = losses.kl_normal(DiagonalGaussian(fake["mu"], fake["logvar"])).mean()
            h = [critic.features(fake[key]) for critic, _, key in stages]  # (N, F) per stage
            adv = [losses.gan_g_loss(c.loss, critic.score(f, ids)) for (critic, _, _), f in zip(stages, h, strict=True)]
            total, out = adv[0] + adv[1] + c.kl_weight * kl, {"g1": adv[0].detach(), "g2": adv[1].detach()}
            if c.aux_weight:  # G's images must be named by their own caption's words
                aux = sum(losses.caption_classification(critic.classify(f), ids, self.slot_sizes)
                          for (critic, _, _), f in zip(stages, h, strict=True))
                total, out["aux"] = total + c.aux_weight * aux, aux.detach()
            return {"loss": total, **out, "kl": kl.detach()}
        raise ValueError(f"StackGAN has no phase {phase!r}")

    # --- sampling --------------------------------------------------------------------------------
    def sample_with_latents(self, n, *, y=None, generator=None):
        ids = self.sample_conditions(n, y)  # (n, S)
        z, eps = self._noise(n, generator)
        with torch.no_grad():
            out = self.generate(z, ids, eps)
        return {"x": out["x"], "z": z, "y": ids, "stage1": out["x1"]}
