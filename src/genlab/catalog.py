"""The built-in model families, data sets and metrics by name, without importing them.

``genlab --help`` and ``genlab list`` answer from these tables without importing torch, and the
registries (``genlab.registry``) import a family's module the first time its name is asked for.
``tests/test_catalog.py`` checks every entry against the real registries and the capabilities the
classes declare, so a table that drifts fails the tests. A new model family adds one line to
``MODELS``.
"""

from __future__ import annotations

from typing import NamedTuple


class ModelEntry(NamedTuple):
    module: str  # the module whose ``@MODELS.register(name)`` registers it
    help: str
    capabilities: tuple[str, ...]  # genlab.models.capabilities.declared(the class)


_ENC = ("Decodes", "Reconstructs", "Encodes")
_GAN = ("Decodes", "Adversarial")

MODELS: dict[str, ModelEntry] = {
    "ae": ModelEntry("genlab.models.autoencoder", "autoencoder: deterministic code z, L2 or BCE reconstruction",
                     _ENC),
    "cgan": ModelEntry("genlab.models.cgan",
                       "class-conditional GAN: label embedding in G, projection discriminator",
                       ("Decodes", "ClassConditional", "Adversarial")),
    "codec": ModelEntry("genlab.models.codec", "learned image codec: Ballé 2017 factorized prior or 2018 hyperprior, "
                        "rate + lambda*MSE", ("Reconstructs", "CodesToBits", "QualityLadder")),
    "cvae": ModelEntry("genlab.models.cvae", "conditional VAE: label into encoder and decoder; fully supervised",
                       (*_ENC, "LikelihoodBound", "ClassConditional", "Classifies")),
    "dcign": ModelEntry("genlab.models.dcign",
                        "DC-IGN: VAE whose first units are bound to named factors (one-factor batches)",
                        (*_ENC, "LikelihoodBound", "NamedUnits", "Transforms")),
    "gan": ModelEntry("genlab.models.gan",
                      "GAN: generator vs discriminator; minimax, non-saturating, hinge or Wasserstein loss", _GAN),
    "gmvae": ModelEntry("genlab.models.gmvae",
                        "Gaussian-mixture VAE: q(y|x) clusters, p(z|y) learned, ELBO enumerates y",
                        (*_ENC, "LikelihoodBound", "Clusters")),
    "infogan": ModelEntry("genlab.models.infogan",
                          "InfoGAN: categorical and continuous codes kept readable by a Q head (Chen et al. 2016)",
                          ("Decodes", "ReadableCodes", "PredictsCodes", "Adversarial")),
    "m2": ModelEntry("genlab.models.m2",
                     "semi-supervised VAE (Kingma M2): q(y|x) classifier, y enumerated when unlabelled",
                     (*_ENC, "LikelihoodBound", "ClassConditional", "Classifies", "LearnsFromPartialLabels")),
    "stackgan": ModelEntry("genlab.models.stackgan",
                           "StackGAN: two-stage caption-conditional GAN with conditioning augmentation",
                           ("ClassConditional", "CaptionConditional")),
    "vae": ModelEntry("genlab.models.vae", "variational autoencoder: Gaussian posterior, ELBO in nats, IWAE bound",
                      (*_ENC, "LikelihoodBound")),
    "wgan": ModelEntry("genlab.models.gan", "Wasserstein GAN with weight clipping (Arjovsky et al. 2017)", _GAN),
    "wgan-gp": ModelEntry("genlab.models.gan", "Wasserstein GAN with a gradient penalty (Gulrajani et al. 2017)",
                          _GAN),
}

#: the module whose import registers every built-in data set and every metric
DATASETS_MODULE = "genlab.data"
METRICS_MODULE = "genlab.evaluation"

#: what ``--data`` takes, in the order ``genlab list`` prints (``genlab.data.dataset_names()``)
DATASET_NAMES: tuple[str, ...] = ("mnist5k", "digits", "toy2d:ring8", "toy2d:grid25", "toy2d:spiral", "shapes",
                                  "folder:PATH", "npz:PATH", "idx:PATH")

#: metric name -> one-line help (``genlab.registry.METRICS``)
METRICS: dict[str, str] = {
    'accuracy': "share of held-out items whose label the model's classify(x) predicts (m2: q(y|x))",
    'bpp': "bits per pixel the codec's entropy model gives the rounded latents of held-out data",
    'cluster_acc': "Hungarian-matched accuracy of the model's own clusters (argmax q(y|x)) on held-out labels",
    'code_acc': 'samples drawn with categorical code k classified as the class matched to k (Hungarian; InfoGAN)',
    'code_acc_real': 'held-out images whose code predicted by Q is the one matched to their label (Hungarian)',
    'code_nmi': 'normalised mutual information of the categorical code and the class of its samples',
    'coverage': 'share of real points whose k-NN ball holds a sample (diversity, k=5)',
    'density': 'real k-NN balls holding each sample, / k (fidelity, ~1 when matched, k=5)',
    'elbo': 'mean evidence lower bound on log p(x), nats per example',
    'fd': 'Fréchet distance of Gaussian fits to real and sample features (FID, own feature net)',
    'hq': 'share of samples within 3 sigma of a mode centre (high quality), toy 2-D sets',
    'is': "Inception score with the data set's own classifier: exp E KL(p(y|x) || p(y))",
    'kid': 'kernel inception distance: unbiased cubic-kernel MMD² of real vs sample features',
    'modes': ("modes holding >= 1% of the samples within 3 sigma (our issue's rule; VEEGAN and PacGAN count >= 1 "
              "sample), toy 2-D sets"),
    'move_iou': 'median IoU of held-out images moved by the model vs exact renders',
    'nll': 'negative log-likelihood estimate, mean of -IWAE bound with K samples, nats per example',
    'precision': "share of samples inside the real data's k-NN manifold (fidelity, k=3)",
    'psnr': 'peak signal-to-noise ratio of reconstructions in dB (images in [0, 1])',
    'rd_loss': "the codec's objective on held-out data: bits per pixel + lambda * 255^2 * MSE",
    'recall': "share of real data inside the samples' k-NN manifold (diversity, k=3)",
    'recon_mse': 'mean squared reconstruction error per pixel of held-out data',
    'scale_iou': 'median IoU of held-out images rescaled by the model vs exact renders',
    'sharpness': 'mean gradient magnitude of samples / that of held-out images (1: as sharp)',
    'unit_corr': 'smallest |correlation| of a factor with its named unit (held-out; per factor too)',
    'unit_leak': 'largest |correlation| of a factor with any unit not its own (per factor too)',
    'view_iou': 'novel views: median IoU of held-out images rotated 15-90° vs exact renders',
}


def models_declaring(*capabilities: str) -> list[str]:
    """The built-in models that declare every one of ``capabilities`` (names from ``genlab.models.capabilities``)."""
    return [name for name, entry in sorted(MODELS.items()) if set(capabilities) <= set(entry.capabilities)]


def spoken_list(names: list[str]) -> str:
    """"a", "a and b", "a, b and c" ("none" for no names): for error messages."""
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else "none"
