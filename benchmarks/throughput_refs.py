"""The plain reference scripts of ``throughput.py``, and genlab models with exactly their nets.

Each reference is written the way the scripts people copy are (eriklindernoren/PyTorch-GAN,
pytorch/examples): a shuffled ``DataLoader``, ``Variable``-style target tensors built every step,
``.item()`` of every loss every step for the progress line, plain Adam, one loop; it trains in
chunks (``train(iterations)``) so the benchmark can alternate it with genlab. The genlab side of each
case is a genlab model whose G and D (or encoder and decoder) are the very same layers with the same
initialisation and hyper-parameters, trained by ``genlab.training.Trainer``.

* ``dcgan``: PyTorch-GAN ``dcgan.py`` (32x32; BatchNorm with eps 0.8 as written there; BCE; G's
  fakes of an iteration reused, detached, for D's step: genlab's side does the same by keeping the
  generator phase's fakes for the next critic step).
* ``wgan-gp-mlp``: PyTorch-GAN ``wgan_gp.py`` (28x28, MLP G with BatchNorm eps 0.8, MLP D, lambda 10,
  n_critic 5, Adam 2e-4 (0.5, 0.999), batch 64).
* ``wgan-gp-conv``: the same loop with the DCGAN nets, D without BatchNorm (Gulrajani et al.).
* ``infogan``: PyTorch-GAN ``infogan.py`` (32x32, 62 noise + 10 categories + 2 continuous codes; LSGAN's
  MSE adversarial loss; a G step, a D step on the same fakes, then an "info" step of G and D together;
  its Softmax before CrossEntropyLoss kept, on both sides, as the script has it). genlab's side is a
  three-phase model (generator, critic, info): genlab's own ``infogan`` differs in design (Q head,
  info term in both phases), so this row measures the trainer, not that model.
* ``vae-mlp``: pytorch/examples ``vae/main.py`` (784-400-20, BCE summed, Adam 1e-3, batch 128);
  genlab's own ``vae`` with ``hidden=(400,)``, ``latent_dim=20``, no binarisation is this net.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Variable

from gan_mnist import RefDiscriminator, RefGenerator, ref_init  # benchmarks/gan_mnist.py
from genlab.config import DataInfo, ModelConfig
from genlab.models.base import GenerativeModel, Phase
from genlab.models.gan import GAN, WGANGP, GANConfig, WGANGPConfig
from genlab.models.vae import VAE, VAEConfig
from genlab.nn.blocks import Flat
from vae import ReferenceVAE  # benchmarks/vae.py

Tensor = torch.FloatTensor


# --- reference nets ---------------------------------------------------------------------------------
def mlp_generator(latent: int = 100, out: int = 784) -> nn.Sequential:
    """PyTorch-GAN wgan_gp.py's G, without its final Tanh (added by the caller)."""
    def block(a, b, normalize=True):
        layers = [nn.Linear(a, b)]
        if normalize:
            layers.append(nn.BatchNorm1d(b, 0.8))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        return layers
    return nn.Sequential(*block(latent, 128, normalize=False), *block(128, 256), *block(256, 512),
                         *block(512, 1024), nn.Linear(1024, out))


def mlp_critic(inp: int = 784) -> nn.Sequential:
    """PyTorch-GAN wgan_gp.py's D body (its last Linear(256, 1) is the head)."""
    return nn.Sequential(nn.Linear(inp, 512), nn.LeakyReLU(0.2, inplace=True), nn.Linear(512, 256),
                         nn.LeakyReLU(0.2, inplace=True))


def conv_critic_body(batchnorm: bool) -> nn.Sequential:
    """The DCGAN D's conv body, (N, 1, 32, 32) -> (N, 512); without BatchNorm for WGAN-GP."""
    d = RefDiscriminator(32)
    layers = [m for m in d.body if batchnorm or not isinstance(m, nn.BatchNorm2d)]
    return nn.Sequential(*layers, nn.Flatten())


class DCGANGenerator(nn.Module):
    """RefGenerator without its final Tanh: z (N, 100) -> pre-tanh (N, 1, 32, 32)."""

    def __init__(self):
        super().__init__()
        ref = RefGenerator(100, 32)
        self.l1, self.init_size = ref.l1, ref.init_size
        self.conv = nn.Sequential(*list(ref.conv)[:-1])

    def forward(self, z):
        return self.conv(self.l1(z).view(len(z), 128, self.init_size, self.init_size))


# --- reference loops ----------------------------------------------------------------------------------
class RefLoop:
    """A script's loop state kept between chunks: data loader position, models, optimisers."""

    def __init__(self, x: torch.Tensor, batch_size: int, seed: int):
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=batch_size,
                                                  shuffle=True)
        self._it, self.line = iter(self.loader), ""

    def next_batch(self) -> torch.Tensor:
        try:
            return next(self._it)[0]
        except StopIteration:  # a new epoch
            self._it = iter(self.loader)
            return next(self._it)[0]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1] for the evaluator."""
        self.G.eval()
        with torch.no_grad():
            img = self.G(torch.randn(n, self.latent, generator=generator))
        self.G.train()
        img = img.view(n, 1, 28, 28) if img.dim() == 2 else img
        if img.shape[-1] != 28:
            img = F.interpolate(img, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        return (img + 1) / 2


class RefDCGAN(RefLoop):
    latent, images_per_iteration = 100, 64

    def __init__(self, x, seed):
        super().__init__(x * 2 - 1, 64, seed)
        self.G, self.D = RefGenerator(100, 32), RefDiscriminator(32)
        self.G.apply(ref_init), self.D.apply(ref_init)
        self.bce = nn.BCELoss()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def train(self, iterations: int) -> None:
        for _ in range(iterations):
            imgs = self.next_batch()
            valid = Variable(Tensor(imgs.size(0), 1).fill_(1.0), requires_grad=False)
            fake = Variable(Tensor(imgs.size(0), 1).fill_(0.0), requires_grad=False)
            real_imgs = Variable(imgs.type(Tensor))
            self.opt_g.zero_grad()
            z = Variable(Tensor(np.random.normal(0, 1, (imgs.shape[0], self.latent))))
            gen_imgs = self.G(z)
            g_loss = self.bce(self.D(gen_imgs), valid)
            g_loss.backward()
            self.opt_g.step()
            self.opt_d.zero_grad()
            real_loss = self.bce(self.D(real_imgs), valid)
            fake_loss = self.bce(self.D(gen_imgs.detach()), fake)
            d_loss = (real_loss + fake_loss) / 2
            d_loss.backward()
            self.opt_d.step()
            self.line = "[D loss: %f] [G loss: %f]" % (d_loss.item(), g_loss.item())


class RefWGANGP(RefLoop):
    """PyTorch-GAN wgan_gp.py's loop; ``conv``: the DCGAN nets (D without BatchNorm) at 32x32."""

    latent, images_per_iteration, n_critic, lambda_gp = 100, 64, 5, 10

    def __init__(self, x, seed, conv: bool):
        super().__init__(x * 2 - 1, 64, seed)
        if conv:
            self.G = RefGenerator(100, 32)
            self.D = nn.Sequential(conv_critic_body(False), nn.Linear(512, 1))
            self.G.apply(ref_init), self.D.apply(ref_init)
        else:
            self.G = nn.Sequential(mlp_generator(), nn.Tanh())
            self.D = nn.Sequential(nn.Flatten(), mlp_critic(), nn.Linear(256, 1))
        self.shape = x.shape[1:]
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.i = 0

    def gen(self, z):
        return self.G(z).view(z.shape[0], *self.shape)

    def gradient_penalty(self, real_samples, fake_samples):
        alpha = Tensor(np.random.random((real_samples.size(0), 1, 1, 1)))
        interpolates = (alpha * real_samples + ((1 - alpha) * fake_samples)).requires_grad_(True)
        d_interpolates = self.D(interpolates)
        fake = Variable(Tensor(real_samples.shape[0], 1).fill_(1.0), requires_grad=False)
        gradients = torch.autograd.grad(outputs=d_interpolates, inputs=interpolates, grad_outputs=fake,
                                        create_graph=True, retain_graph=True, only_inputs=True)[0]
        gradients = gradients.view(gradients.size(0), -1)
        return ((gradients.norm(2, dim=1) - 1) ** 2).mean()

    def train(self, iterations: int) -> None:
        for _ in range(iterations):
            imgs = self.next_batch()
            real_imgs = Variable(imgs.type(Tensor))
            self.opt_d.zero_grad()
            z = Variable(Tensor(np.random.normal(0, 1, (imgs.shape[0], self.latent))))
            fake_imgs = self.gen(z)
            real_validity, fake_validity = self.D(real_imgs), self.D(fake_imgs)
            gp = self.gradient_penalty(real_imgs.data, fake_imgs.data)
            d_loss = -torch.mean(real_validity) + torch.mean(fake_validity) + self.lambda_gp * gp
            d_loss.backward()
            self.opt_d.step()
            self.opt_g.zero_grad()
            if self.i % self.n_critic == 0:
                fake_imgs = self.gen(z)
                g_loss = -torch.mean(self.D(fake_imgs))
                g_loss.backward()
                self.opt_g.step()
                self.line = "[D loss: %f] [G loss: %f]" % (d_loss.item(), g_loss.item())
            self.i += 1


class RefVAE(RefLoop):
    """pytorch/examples vae/main.py's train loop (loss.item() every step, a line every 10 batches)."""

    latent, images_per_iteration = 20, 128

    def __init__(self, x, seed):
        super().__init__(x, 128, seed)
        self.model = ReferenceVAE()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.train_loss, self.i = 0.0, 0

    def train(self, iterations: int) -> None:
        self.model.train()
        for _ in range(iterations):
            data = self.next_batch()
            self.opt.zero_grad()
            recon_batch, mu, logvar = self.model(data)
            bce = F.binary_cross_entropy(recon_batch, data.view(-1, 784), reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = bce + kld
            loss.backward()
            self.train_loss += loss.item()
            self.opt.step()
            if self.i % 10 == 0:
                self.line = f"Loss: {loss.item() / len(data):.6f}"
            self.i += 1

    def sample(self, n, generator):
        with torch.no_grad():
            z = torch.randn(n, 20, generator=generator)
            return torch.sigmoid(self.model.decode_logits(z)).view(n, 1, 28, 28)


class InfoGenerator(nn.Module):
    """PyTorch-GAN infogan.py's G: (noise, one-hot label, code) -> (N, 1, 32, 32) in [-1, 1]."""

    def __init__(self, latent=62, classes=10, code=2):
        super().__init__()
        self.l1 = nn.Sequential(nn.Linear(latent + classes + code, 128 * 8 * 8))
        self.conv_blocks = RefGenerator(100, 32).conv  # the same stack as the DCGAN's G

    def forward(self, noise, labels, code):
        out = self.l1(torch.cat((noise, labels, code), -1))
        return self.conv_blocks(out.view(out.shape[0], 128, 8, 8))


class InfoDiscriminator(nn.Module):
    """PyTorch-GAN infogan.py's D: conv blocks (BatchNorm eps 0.8), adversarial, softmax class and code heads."""

    def __init__(self, classes=10, code=2):
        super().__init__()
        self.conv_blocks = nn.Sequential(*[m for m in RefDiscriminator(32).body])
        self.adv_layer = nn.Sequential(nn.Linear(512, 1))
        self.aux_layer = nn.Sequential(nn.Linear(512, classes), nn.Softmax(dim=1))
        self.latent_layer = nn.Sequential(nn.Linear(512, code))

    def forward(self, img):
        out = self.conv_blocks(img).flatten(1)
        return self.adv_layer(out), self.aux_layer(out), self.latent_layer(out)


def info_inputs(n: int, latent=62, classes=10, code=2):
    z = Variable(Tensor(np.random.normal(0, 1, (n, latent))))
    sampled = np.random.randint(0, classes, n)
    labels = Variable(Tensor(np.eye(classes, dtype=np.float32)[sampled]))
    codes = Variable(Tensor(np.random.uniform(-1, 1, (n, code))))
    return z, labels, codes, torch.as_tensor(sampled)


class RefInfoGAN(RefLoop):
    latent, images_per_iteration = 62, 64

    def __init__(self, x, seed):
        super().__init__(x * 2 - 1, 64, seed)
        self.G, self.D = InfoGenerator(), InfoDiscriminator()
        self.G.apply(ref_init), self.D.apply(ref_init)
        self.mse, self.ce = nn.MSELoss(), nn.CrossEntropyLoss()
        adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
        self.opt_g, self.opt_d = torch.optim.Adam(self.G.parameters(), **adam), torch.optim.Adam(self.D.parameters(), **adam)
        self.opt_info = torch.optim.Adam(itertools.chain(self.G.parameters(), self.D.parameters()), **adam)

    def train(self, iterations: int) -> None:
        for _ in range(iterations):
            imgs = self.next_batch()
            b = imgs.shape[0]
            valid = Variable(Tensor(b, 1).fill_(1.0), requires_grad=False)
            fake = Variable(Tensor(b, 1).fill_(0.0), requires_grad=False)
            real_imgs = Variable(imgs.type(Tensor))
            self.opt_g.zero_grad()
            z, label_input, code_input, _ = info_inputs(b)
            gen_imgs = self.G(z, label_input, code_input)
            g_loss = self.mse(self.D(gen_imgs)[0], valid)
            g_loss.backward()
            self.opt_g.step()
            self.opt_d.zero_grad()
            d_loss = (self.mse(self.D(real_imgs)[0], valid) + self.mse(self.D(gen_imgs.detach())[0], fake)) / 2
            d_loss.backward()
            self.opt_d.step()
            self.opt_info.zero_grad()
            z, label_input, code_input, gt_labels = info_inputs(b)
            _, pred_label, pred_code = self.D(self.G(z, label_input, code_input))
            info_loss = self.ce(pred_label, gt_labels) + 0.1 * self.mse(pred_code, code_input)
            info_loss.backward()
            self.opt_info.step()
            self.line = "[D loss: %f] [G loss: %f] [info loss: %f]" % (d_loss.item(), g_loss.item(), info_loss.item())

    def sample(self, n, generator):
        self.G.eval()
        with torch.no_grad():
            z = torch.randn(n, 62, generator=generator)
            labels = F.one_hot(torch.randint(0, 10, (n,), generator=generator), 10).float()
            codes = torch.rand(n, 2, generator=generator) * 2 - 1
            img = self.G(z, labels, codes)
        self.G.train()
        return (F.interpolate(img, size=(28, 28), mode="bilinear", antialias=True, align_corners=False) + 1) / 2


class InfoGANNets(GenerativeModel):
    """The reference InfoGAN's nets, losses and three steps as genlab phases: generator, critic (on the
    generator phase's fakes), info (G and D's trunk and code heads together)."""

    def __init__(self, config, data_info):
        super().__init__(config, data_info)
        self.generator, self.critic = InfoGenerator(), InfoDiscriminator()
        self.generator.apply(ref_init), self.critic.apply(ref_init)
        self._fakes = None

    def phases(self):
        adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
        d = self.critic
        info = lambda: itertools.chain(self.generator.parameters(), d.conv_blocks.parameters(),  # noqa: E731
                                       d.aux_layer.parameters(), d.latent_layer.parameters())
        return [Phase("generator", self.generator.parameters, **adam), Phase("critic", d.parameters, **adam),
                Phase("info", info, **adam)]

    def draw(self, n, generator=None):
        z = torch.randn(n, 62, generator=generator)
        sampled = torch.randint(0, 10, (n,), generator=generator)
        return z, F.one_hot(sampled, 10).float(), torch.rand(n, 2, generator=generator) * 2 - 1, sampled

    def loss(self, phase, batch, *, step=0):
        x = batch["x"] * 2 - 1
        if phase == "generator":
            z, labels, codes, _ = self.draw(len(x))
            gen = self.generator(z, labels, codes)
            self._fakes = gen.detach()
            return {"loss": F.mse_loss(self.critic(gen)[0], torch.ones(len(x), 1))}
        if phase == "critic":
            real, fake = self.critic(x)[0], self.critic(self._fakes)[0]
            return {"loss": (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))) / 2}
        z, labels, codes, sampled = self.draw(len(x))
        _, pred_label, pred_code = self.critic(self.generator(z, labels, codes))
        return {"loss": F.cross_entropy(pred_label, sampled) + 0.1 * F.mse_loss(pred_code, codes)}

    def sample_with_latents(self, n, *, y=None, generator=None):
        with torch.no_grad():
            z, labels, codes, _ = self.draw(n, generator)
            return {"x": (self.generator(z, labels, codes) + 1) / 2, "z": z}


# --- genlab models with the references' nets -------------------------------------------------------------
class DCGANNets(GAN):
    """genlab's GAN with PyTorch-GAN's DCGAN nets, init and algorithm (BCE, D loss halved, D's real
    and fake passes apart because D has BatchNorm, the generator phase's fakes reused by D)."""

    def _g_net(self, conv):
        return DCGANGenerator()

    def _d_body(self, conv):
        return conv_critic_body(True), 512

    def __init__(self, config, data_info):
        super().__init__(config, data_info)
        self.generator.apply(ref_init), self.critic.apply(ref_init)
        self._fakes = None

    def loss(self, phase, batch, *, step=0):
        x = batch["x"]
        if phase == "generator":
            fake = self.generator(self.prior_sample(len(x)))
            self._fakes = fake.detach()
            return {"loss": F.softplus(-self.critic(fake)).mean()}  # BCE(D(G(z)), 1)
        fake = self._fakes
        if fake is None or len(fake) != len(x):
            with torch.no_grad():
                fake = self.generator(self.prior_sample(len(x)))
        d_real, d_fake = self.critic(x), self.critic(fake)
        return {"loss": (F.softplus(-d_real).mean() + F.softplus(d_fake).mean()) / 2}


class WGANGPNets(WGANGP):
    """genlab's WGAN-GP with PyTorch-GAN wgan_gp.py's MLP nets, or the DCGAN nets (D without BatchNorm)."""

    def _g_net(self, conv):
        return DCGANGenerator() if conv else Flat(mlp_generator(), out_shape=self.data_info.shape)

    def _d_body(self, conv):
        return (conv_critic_body(False), 512) if conv else (Flat(mlp_critic()), 256)

    def __init__(self, config, data_info):
        super().__init__(config, data_info)
        if config.arch == "conv":
            self.generator.apply(ref_init), self.critic.apply(ref_init)


def genlab_model(case: str, shape: tuple[int, ...]):
    info = DataInfo(shape=shape, kind="image", num_classes=10)
    common = {"latent_dim": 100, "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999), "ema": 0.0}
    if case == "dcgan":
        return DCGANNets(GANConfig(arch="conv", loss="nonsaturating", n_critic=1, **common), info)
    if case in ("wgan-gp-mlp", "wgan-gp-conv"):
        arch = case.rsplit("-", 1)[1]
        return WGANGPNets(WGANGPConfig(arch=arch, n_critic=5, gp_weight=10.0, **common), info)
    if case == "infogan":
        return InfoGANNets(ModelConfig(latent_dim=62), info)
    if case == "vae-mlp":
        return VAE(VAEConfig(latent_dim=20, hidden=(400,), arch="mlp", binarize=False), info)
    raise KeyError(case)
