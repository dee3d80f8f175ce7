"""M2: semi-supervised learning with a deep generative model (Kingma et al. 2014, Sec. 3.1.2).

The label y is a latent variable that is observed for some examples and inferred for the rest:

    generative:  y ~ Uniform(K),  z ~ N(0, I),  x ~ p(x | z, y)        (the CVAE's decoder)
    inference:   q(y | x) = softmax(g_cls(x))  (the classifier),  q(z | x, y)  (the CVAE's encoder)

    labelled (x, y):  L(x, y) = -E_q(z|x,y)[log p(x|z,y) + log p(y)] + KL(q(z|x,y) || p(z))
    unlabelled x:     U(x) = sum_y q(y|x) L(x, y) - H(q(y|x))        (y enumerated exactly)
    loss = (sum_labelled L + sum_unlabelled U) / B + alpha * mean_labelled -log q(y|x)

over a batch of B examples, labelled or not (the data pipeline marks a hidden label as y = -1:
see ``genlab.data.labels``). Only the last term trains q(y|x) on labels: Kingma et al. add it as
alpha_paper * E_labelled[-log q(y|x)] to the ELBO summed over the N examples of the data set, with
alpha_paper = 0.1 * N. Divided by N, as here, that is ``alpha`` = 0.1 on the mean cross-entropy of
the labelled examples of a batch, when batches hold labelled examples at their natural rate. With
every label observed the loss is exactly the CVAE's plus alpha times the classifier's
cross-entropy (a test checks it).

The defaults, and why (their measurements: docs/models/m2.md):
* ``latent_dim`` = 4: the decoder must need y. With a wide z, z carries the class too, the decoder
  ignores y and the unlabelled term tells q(y|x) nothing.
* labelled examples at half of every batch (``train --labels N`` repeats them, ``data.label_share``
  = 0.5, as most M2 code pairs a labelled batch with an unlabelled one); at their natural rate the
  few labels are too rare a signal. ``alpha`` = 1.
* a small conv classifier q(y|x) (``classifier_arch`` = "conv", channels 16, 32) beside MLP encoder
  and decoder; the decoder, run K times per unlabelled example, stays an MLP, which is where the time goes.
* not in the paper, on images: ``consistency`` * KL(q(y|x) || q(y|x')) for a random view x' of the
  same image (turned, slanted, scaled, shifted, pen width changed: ``nn.augment.label_preserving_view``),
  the target q(y|x) held fixed (the Pi-model of Laine & Aila 2017; UDA, Xie et al. 2020). It carries
  the few labels to the unlabelled images near them. ``consistency=0`` is Kingma et al.'s M2.
``classify(x)`` is q(y|x) (logits), which is what ``genlab evaluate`` scores as ``accuracy``;
``elbo(x)`` (the cvae's, with this q(y|x)) is -U(x) with the KL weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import DataInfo, option
from ..losses import class_consistency, marginal_balance
from ..nn import make_encoder
from ..nn.augment import label_preserving_view
from ..registry import MODELS
from .capabilities import LearnsFromPartialLabels
from .cvae import CVAE, CVAEConfig


@dataclass(frozen=True)
class M2Config(CVAEConfig):
    latent_dim: int = option(4, "width of z: small, so that the class has to go through y")
    channels: tuple[int, ...] = option((16, 32), "conv widths per stride-2 stage, the classifier's too")
    alpha: float = option(1.0, "weight of the labelled cross-entropy beside the per-example ELBO (paper: 0.1)",
                          min=0)
    balance: float = option(0.0, "weight of KL(batch-mean q(y|x) || U(K)), as the GMVAE's (0: off)", min=0)
    consistency: float = option(10.0, "weight of KL(q(y|x) || q(y|x')) for a random label-preserving view x' "
                                      "(0: the paper)", min=0)
    classifier_arch: str | None = option("conv", "q(y|x)'s network (none: arch); conv on images only",
                                         choices=("mlp", "conv"))


@MODELS.register("m2", help="semi-supervised VAE (Kingma M2): q(y|x) classifier, y enumerated when unlabelled")
class M2(CVAE, LearnsFromPartialLabels):
    Config = M2Config
    learns_from_partial_labels = True  # batches whose hidden labels are -1 (``train --labels N``)

    def __init__(self, config: M2Config, data_info: DataInfo):
        super().__init__(config, data_info)
        # q(y|x): its own network, as in the paper (the encoder's widths; its arch unless set)
        arch = config.classifier_arch or config.arch
        self.classifier = make_encoder(arch, data_info.shape, self.num_classes, hidden=config.hidden,
                                       channels=config.channels)

    def classify(self, x: Tensor) -> Tensor:
        """Logits of q(y|x), (N, K)."""
        return self.classifier(x)

    def loss(self, phase, batch, *, step=0):
        x = self.training_input(batch)
        n, k = len(x), self.num_classes
        y = batch.get("y")
        if y is None:
            y = torch.full((n,), -1, dtype=torch.long, device=x.device)
        lab = y >= 0  # (N,) which labels the batch shows
        h = self.encoder(x)  # (N, F)
        logits = self.classify(x)  # (N, K)
        log_q = F.log_softmax(logits[~lab], dim=1)  # (Nu, K)
        # one decoder pass: the labelled examples with their label, the unlabelled with every label
        xu, hu = x[~lab], h[~lab]
        t = self.labelled_terms(torch.cat([x[lab], xu.repeat_interleave(k, 0)]),
                                torch.cat([h[lab], hu.repeat_interleave(k, 0)]),
                                torch.cat([y[lab], torch.arange(k, device=x.device).repeat(len(xu))]),
                                self.kl_weight(step))  # (Nl + Nu*K,) each
        n_lab = int(lab.sum())
        q = log_q.exp()

        def per_example(v: Tensor, entropy: bool) -> Tensor:  # (Nl + Nu*K,) -> (N,) in batch order
            unl = (q * v[n_lab:].view(-1, k)).sum(1)  # (Nu,) expectation under q(y|x)
            if entropy:
                unl = unl + (q * log_q).sum(1)  # - H(q(y|x))
            return torch.cat([v[:n_lab], unl])

        gen = per_example(t["loss"], True)  # L for labelled, U for unlabelled
        ce = F.cross_entropy(logits[lab], y[lab]) if n_lab else logits.new_zeros(())
        loss = gen.mean() + self.config.alpha * ce
        marginal = marginal_balance(F.softmax(logits, dim=1))
        if self.config.balance > 0:
            loss = loss + self.config.balance * marginal
        extra = {}
        if self.config.consistency > 0 and self.is_image:
            # not in the paper: q(y|x) of a slightly turned, scaled, shifted digit should not change
            # (the Pi-model term); it carries the labels' information to the unlabelled examples
            cons = class_consistency(logits, self.classify(label_preserving_view(batch["x"]))).mean()
            loss = loss + self.config.consistency * cons
            extra["consistency"] = cons.detach()
        with torch.no_grad():
            nelbo = per_example(t["recon"] + t["kl"] - self.log_prior_y, True).mean()
            out = {"nelbo": nelbo, "recon": per_example(t["recon"], False).mean(),
                   "kl": per_example(t["kl"], False).mean(), "ce": ce.detach(),
                   "labelled": lab.float().mean(), "kl_y_marginal": marginal.detach(), **extra}
        return {"loss": loss, **out}
