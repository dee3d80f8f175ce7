"""``genlab tour``: the lecture's arc trained on the built-in data in one command, as ``index.html``.

Eight sections, each a few sentences, pictures and numbers, all made in this run: autoencoder vs
VAE, a 2-D latent, k-means on the latent, GANs on a ring of Gaussians (the minimax game, its
non-saturating form, WGAN-GP), a DCGAN's samples beside its Fréchet distance over training, InfoGAN,
conditional generation and latent arithmetic, and the learned codec against JPEG at matched bits.
Training budgets are shares of ``--minutes``; ``tiny=True`` trains every model for a few steps on
``digits`` (the test suite's end-to-end check).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .html import esc, image, page, table
from .run_pages import comparison_table, read_metrics

log = logging.getLogger("genlab")


@dataclass
class Section:
    title: str
    text: str
    pictures: list[tuple[Path, str]] = field(default_factory=list)
    header: tuple[str, ...] = ()
    rows: list[tuple] = field(default_factory=list)

    def html(self) -> str:
        body = f"<h2>{esc(self.title)}</h2><p>{esc(self.text)}</p>"
        body += "".join(image(p, c) for p, c in self.pictures)
        return body + (table(self.header, self.rows) if self.rows else "")


class Tour:
    def __init__(self, out: str | Path, *, minutes: float = 15.0, tiny: bool = False):
        self.out, self.minutes, self.tiny = Path(out), minutes, tiny
        self.runs, self.pictures = self.out / "runs", self.out / "pictures"
        self.pictures.mkdir(parents=True, exist_ok=True)
        self.data = "digits" if tiny else "mnist5k"
        self.trained: list[Path] = []

    # --- helpers -------------------------------------------------------------------------------
    def train(self, model: str, share: float, *sets: str, data: str | None = None) -> Path:
        """Train ``model`` for ``share`` of the budget (``genlab.train``); returns its run folder."""
        from ..api.training import train

        budget = {"steps": 12} if self.tiny else {"time": round(max(10.0, share * self.minutes * 60))}
        overrides = [*sets, *(("train.eval_every=0", "train.sample_every=6") if self.tiny else ())]
        log.info("tour: training %s on %s", model, data or self.data)
        run = train(model, data or self.data, runs=self.runs, overrides=overrides, progress=False,
                    notify=log.debug, **budget).path
        self.trained.append(run)
        return run

    def load(self, run: Path):
        from ..runs import load_model, open_run

        model, config = load_model(open_run(run))
        return model.eval(), config

    def dataset(self, spec: str | None = None):
        from ..data import load_data

        return load_data(spec or self.data)

    @staticmethod
    def value(run: Path, name: str) -> float:
        return read_metrics(run).get("values", {}).get(name, float("nan"))

    @staticmethod
    def floor(run: Path, name: str) -> float:
        return read_metrics(run).get("floor", {}).get(name, float("nan"))

    # --- the sections --------------------------------------------------------------------------
    def autoencoders(self) -> list[Section]:
        ae, vae = self.train("ae", 0.08), self.train("vae", 0.10)
        self.vae = vae
        first = Section(
            "1. Autoencoder vs variational autoencoder",
            "Both squeeze each digit through a small code z and rebuild it. The autoencoder's codes land "
            "wherever training put them, so decoding random z ~ N(0, I) gives poor images: where should you "
            "sample z? The VAE's KL term pulls its codes towards that prior, so its samples look like digits "
            "and its interpolations stay on the manifold.",
            [(ae / "recon.png", "autoencoder: inputs and reconstructions"),
             (vae / "recon.png", "VAE: inputs and reconstructions"),
             (ae / "samples.png", "autoencoder: decoded random z"), (vae / "samples.png", "VAE: samples"),
             (ae / "interp.png", "autoencoder: interpolation"), (vae / "interp.png", "VAE: interpolation")],
            ("model", "recon_mse ↓", "fd of samples ↓", "fd real-vs-real"),
            [(name, self.value(r, "recon_mse"), self.value(r, "fd"), self.floor(r, "fd"))
             for name, r in (("autoencoder", ae), ("VAE", vae))])
        flat = self.train("vae", 0.07, "model.latent_dim=2")
        second = Section(
            "2. A VAE with a 2-D latent: the manifold",
            "With two latent dimensions the whole code space fits on the page: decoding a grid of z shows how "
            "the VAE lays the digits out, and the codes of held-out digits show which class lives where.",
            [(flat / "manifold.png", "decoder over the latent grid"),
             (flat / "latent.png", "codes of held-out digits")],
            ("metric", "value"), [("elbo (nats) ↑", self.value(flat, "elbo")), ("fd ↓", self.value(flat, "fd"))])
        return [first, second]

    def clustering(self) -> Section:
        from ..clustering import codes
        from ..evaluation.cluster_metrics import cluster_scores, kmeans

        model, _ = self.load(self.vae)
        data = self.dataset()
        index = data.indices("test")
        z, _ = codes(model, data, index)
        y = data.y[index].numpy()
        k = int(data.num_classes)
        latent = cluster_scores(y, kmeans(z, k)[0])
        pixels = cluster_scores(y, kmeans(data.images(index).flatten(1).numpy(), k)[0])
        return Section(
            "3. Clusters from the code: k-means on z vs on pixels",
            "k-means with k = 10 on the VAE's latent means and on raw pixels of the test digits, scored against "
            "the labels it never saw (cluster accuracy by Hungarian matching, one cluster per class).",
            [], ("features", "cluster_acc ↑", "nmi ↑", "ari ↑"),
            [(f"VAE latent ({z.shape[1]}-d)", latent["cluster_acc"], latent["nmi"], latent["ari"]),
             ("pixels", pixels["cluster_acc"], pixels["nmi"], pixels["ari"])])

    def toy_gans(self) -> Section:
        runs = [("minimax", self.train("gan", 0.04, "model.loss=minimax", data="toy2d:ring8")),
                ("non-saturating", self.train("gan", 0.04, "model.loss=nonsaturating", data="toy2d:ring8")),
                ("WGAN-GP", self.train("wgan-gp", 0.04, data="toy2d:ring8"))]
        return Section(
            "4. Why GANs fail, on a ring of eight Gaussians",
            "Colour: D's output over the plane; arrows: the gradient G's loss puts on its samples. With the "
            "minimax loss a confident D gives G almost no gradient; the non-saturating form keeps it alive but "
            "can chase a few modes; WGAN-GP's critic stays informative everywhere, so all eight modes are found.",
            [(r / "dfield.png", name) for name, r in runs],
            ("loss", "modes found (of 8) ↑", "high-quality share ↑"),
            [(name, self.value(r, "modes"), self.value(r, "hq")) for name, r in runs])

    def improving(self) -> Section:
        from ..pictures.grids import figure
        from ..runs.logs import read_jsonl

        every = "train.eval_every=6" if self.tiny else "train.eval_every=300"
        run = self.train("gan", 0.15, every, "train.sample_every=6" if self.tiny else "train.sample_every=300")
        rows = [r for r in read_jsonl(run / "metrics.jsonl") if "fd" in r]
        fig, ax = figure(figsize=(5, 3))
        ax.plot([r["step"] for r in rows], [r["fd"] for r in rows], marker="o", label="samples vs held-out")
        if rows and "fd" in rows[-1].get("floor", {}):
            ax.axhline(rows[-1]["floor"]["fd"], ls="--", color="gray", label="real vs real")
        ax.set_xlabel("step"), ax.set_ylabel("Fréchet distance"), ax.set_yscale("log"), ax.legend()
        fig.tight_layout()
        curve = self.pictures / "gan_fd.png"
        fig.savefig(curve, dpi=100)
        grids = sorted((run / "samples").glob("step-*.png"))
        picks = [grids[i] for i in sorted({0, len(grids) // 2, len(grids) - 1})] if grids else []
        return Section(
            "5. How do you know that you are improving?",
            "A DCGAN on the digits: its samples at a few steps of training beside the Fréchet distance between "
            "its samples and held-out digits (features of a classifier trained on this data set). The dashed "
            "line is the same distance between two sets of real digits: the floor a perfect generator would hit.",
            [(curve, "Fréchet distance over training")] + [(p, p.stem) for p in picks],
            ("metric", "final value", "real-vs-real"),
            [(m, self.value(run, m), self.floor(run, m)) for m in ("fd", "precision", "recall")])

    def infogan(self) -> Section:
        from ..evaluation import evaluate
        from ..latent.traverse import code_grid
        from ..pictures.grids import save_image_grid
        from ..runs.logs import read_jsonl

        # 256-wide fully connected layers in D and G instead of the paper's 1,024: in the tour's two minutes they
        # reach code_acc 0.49-0.53 and FD 6-7 where the paper's widths reach 0.22 and FD 42 (docs/index.md#the-tour)
        run = self.train("infogan", 0.20, "model.hidden=256", "model.g_fc=256")
        model, _ = self.load(run)
        pictures = []
        for code in range(model.code_layout.cont_codes):
            grid = code_grid(model, code, torch.linspace(-2, 2, 9))
            path = self.pictures / f"infogan_code{code}.png"
            save_image_grid(grid.flatten(0, 1), path, grid.shape[1])
            pictures.append((path, f"rows: the 10 categories; columns: continuous code {code} from -2 to 2"))
        values = evaluate(model, self.dataset(), metrics=["code_acc", "code_nmi", "code_acc_real"], n=1000)["values"]
        stats = [r["critic/mi_cat"] for r in read_jsonl(run / "stats.jsonl") if "critic/mi_cat" in r]
        return Section(
            "6. InfoGAN: codes that mean something, without labels",
            "G draws from noise plus a 10-way categorical code and two continuous codes; a head Q on D's trunk "
            "must read the codes back, which maximises a lower bound L_I on their mutual information with the "
            "image (at most ln 10 = 2.30 nats for the category). Nobody tells the category to be the digit, yet "
            "it tends to become one: code_acc maps categories to classes one-to-one and counts agreements. Here "
            "D's and G's fully connected layers are 256 wide, a quarter of the paper's, so that the codes form "
            "within the tour's two minutes.",
            pictures, ("measure", "value"),
            [("L_I, last logged (nats)", stats[-1] if stats else float("nan")),
             *((k, v) for k, v in values.items())])

    def conditional(self) -> Section:
        from ..evaluation import feature_extractor
        from ..latent.edits import attribute_edit
        from ..latent.references import resolve_all
        from ..pictures.grids import save_image_grid
        from ..runs import open_run

        run = self.train("cgan", 0.08)
        attribute = self.pictures / "thickness.png"
        effect = self.pictures / "thickness.json"
        vae, config = self.load(self.vae)
        data = open_run(self.vae).data()
        shape = tuple(config.data_info.shape)
        refs = {"k": 10 if self.tiny else 20, "split": "test"}
        _, grid, measured = attribute_edit(vae, resolve_all([f"test:{','.join(map(str, range(8)))}"], data, shape,
                                                            **refs),
                                           with_x=resolve_all(["thickness+"], data, shape, **refs),
                                           without_x=resolve_all(["thickness-"], data, shape, **refs),
                                           strength=1.5, steps=5, features=feature_extractor(data))
        save_image_grid(grid.flatten(0, 1), attribute, grid.shape[1])
        effect.write_text(json.dumps(measured, indent=2))
        return Section(
            "7. Conditional generation and latent arithmetic",
            "A class-conditional GAN draws the class it is asked for (a column per class). Without labels, a "
            "direction in a VAE's latent can still mean something: the mean code of the thickest digits minus "
            "that of the thinnest (balanced over classes) is a 'thickness' vector; adding it to other digits' "
            "codes thickens them while they stay the same digit.",
            [(run / "samples.png", "cGAN: a column per class"),
             (attribute, "VAE: each digit, then its code moved by -1.5 ... +1.5 x the thickness vector")],
            ("measure", "value"),
            [("cGAN fd ↓", self.value(run, "fd")),
             ("mean ink at -1.5 x vector", measured["thickness"]["weakest"]),
             ("mean ink at +1.5 x vector", measured["thickness"]["strongest"]),
             ("share of digits whose ink rose", measured["thickness"]["rose"]),
             ("share whose class was kept", measured.get("class_kept", float("nan")))])

    def codec(self) -> Section:
        from ..compression.rd import plot_matched

        run = self.train("codec", 0.08, "train.batch_size=16")
        model, _ = self.load(run)
        x, _ = self.dataset().tensors("test", limit=8, seed=3)
        path = self.pictures / "codec_matched.png"
        records = plot_matched([model], list(x), path, n=8)

        def mean(key: str) -> float:
            return sum(r[key] for r in records) / len(records)

        return Section(
            "8. A learned codec against JPEG at the same number of bits",
            "An autoencoder whose code is rounded to integers and entropy-coded under a learned prior is an "
            "image codec that writes real files (genlab compress / decompress). Below, the same digits coded "
            "by it and by JPEG given at most the same bits for each image (JPEG's entropy-coded data only).",
            [(path, "originals; genlab; JPEG at matched bits (bpp and PSNR under each)")],
            ("codec", "bits per pixel", "PSNR (dB)"),
            [("genlab", mean("genlab_bpp"), mean("genlab_psnr")), ("JPEG", mean("jpeg_ecs_bpp"), mean("jpeg_psnr"))])

    # --- the whole tour ------------------------------------------------------------------------
    def run(self) -> Path:
        start = time.perf_counter()
        sections = self.autoencoders()
        sections += [self.clustering(), self.toy_gans(), self.improving(), self.infogan(), self.conditional(),
                     self.codec()]
        minutes = (time.perf_counter() - start) / 60
        body = (f"<p>Trained and measured in this run: {minutes:.1f} minutes on this machine, "
                f"data {esc(self.data)}. Every number below was computed from these runs.</p>")
        body += "".join(s.html() for s in sections)
        body += "<h2>All runs</h2>" + comparison_table(self.trained)
        body += "<p>" + ", ".join(f'<code>{esc(r.name)}</code>' for r in self.trained) + f" in {esc(self.runs)}</p>"
        index = self.out / "index.html"
        index.write_text(page("genlab tour: generative networks in one run", body), encoding="utf-8")
        return index

