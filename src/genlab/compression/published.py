"""Published rate–distortion points on the 24 Kodak images (mean bpp, mean PSNR on RGB), kept as data with
their source and drawn as reference lines labelled "published" by ``rd.plot_rd``.

The numbers are those of CompressAI's ``results/image/kodak/paper-bmshj2018-*.json`` (the curves digitised
from the papers' own Kodak results), as listed in the project's field notes. They come from models trained
for days on GPUs on large photo sets, so they are a ceiling for genlab's CPU-minute training, not a target.
"""

from __future__ import annotations

PUBLISHED_KODAK: dict[str, dict] = {
    "balle2018_hyperprior": {
        "label": "Ballé et al. 2018, scale hyperprior (published)",
        "source": "Ballé, Minnen, Singh, Hwang, Johnston 2018, 'Variational image compression with a scale "
                  "hyperprior', ICLR; points from CompressAI results/image/kodak/paper-bmshj2018-hyperprior.json",
        "points": [(0.115, 27.11), (0.186, 28.68), (0.302, 30.62), (0.469, 32.55), (0.686, 34.58),
                   (0.967, 36.72), (1.307, 38.81), (1.728, 40.79)],
    },
    "balle2017_factorized": {
        "label": "Ballé et al. 2017, factorized prior (published)",
        "source": "Ballé, Laparra, Simoncelli 2017, 'End-to-end optimized image compression', ICLR; points "
                  "from CompressAI results/image/kodak/paper-bmshj2018-factorized.json",
        "points": [(0.120, 26.78), (0.316, 30.02), (0.481, 31.73), (1.061, 35.82), (1.958, 40.13)],
    },
}


def published_curves() -> dict[str, list[dict]]:
    """{name: [{"bpp", "psnr", "published": True}, ...]} of every stored curve, in the shape of ``rd`` curves."""
    return {name: [{"quality": None, "bpp": b, "psnr": p, "published": True} for b, p in ref["points"]]
            for name, ref in PUBLISHED_KODAK.items()}
