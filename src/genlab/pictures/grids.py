"""Pictures people look at: sample grids, reconstructions, interpolation strips, manifold maps,
latent scatters, a GAN critic's field over the plane. Images come in as (N, C, H, W) floats in
[0, 1]; 2-D points as (N, 2).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def grid_array(x: Tensor, nrow: int | None = None, *, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one uint8 image (rows*H, cols*W, C) with ``nrow`` images a row."""
    x = x.detach().float().cpu().clamp(0, 1)
    n, c, h, w = x.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = torch.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), pad_value)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        canvas[:, top:top + h, left:left + w] = x[i]
    arr = (canvas.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return arr


def save_image_grid(x: Tensor, path: str | Path, nrow: int | None = None, *, min_side: int = 280,
                    pad: int = 2) -> Path:
    """Save a grid PNG, upscaled with nearest-neighbour so 8x8 or 28x28 digits are visible."""
    arr = grid_array(x, nrow, pad=pad)
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    scale = max(1, math.ceil(min_side / max(img.size)))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def figure(nrows: int = 1, ncols: int = 1, **kw):
    """(Figure, axes) drawn off-screen without pyplot, so that saving a picture never changes the
    pyplot backend of the caller (a notebook's inline plots keep working)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kw.pop("figsize", None))
    return fig, fig.subplots(nrows, ncols, **kw)


def save_points(samples: Tensor, path: str | Path, *, real: Tensor | None = None,
                centres: Tensor | None = None, title: str = "") -> Path:
    """Scatter of 2-D samples over the real data (grey) and the exact mode centres (red x)."""
    fig, ax = figure(figsize=(4.5, 4.5))
    if real is not None:
        ax.scatter(*real[:, :2].T.cpu(), s=2, c="0.75", label="real")
    ax.scatter(*samples[:, :2].detach().T.cpu(), s=2, c="tab:blue", label="samples")
    if centres is not None:
        ax.scatter(*centres[:, :2].T.cpu(), s=40, c="red", marker="x", label="modes")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def save_dfield(field: Tensor, extent: tuple[float, float, float, float], real: Tensor, fake: Tensor,
                at: Tensor, push: Tensor, path: str | Path, *, probability: bool, title: str = "") -> Path:
    """D's output on a grid (H, W) over ``extent`` (x0, x1, y0, y1) as a heat map, real points (black),
    generated ones (orange) and arrows ``push`` (M, 2) at points ``at`` (M, 2): G's gradient field.

    Arrows share one scale per picture (the 90th-percentile one is 8% of the box wide); the title
    gives the median norm, which is what vanishes when D saturates.
    """
    fig, ax = figure(figsize=(5.6, 4.6))
    kw = {"vmin": 0.0, "vmax": 1.0} if probability else {}
    im = ax.imshow(field.numpy(), extent=extent, origin="lower", cmap="coolwarm", alpha=0.85, aspect="equal", **kw)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label(
        "D(x) = P(real)" if probability else "critic value D(x)", fontsize=8)
    ax.scatter(*real[:, :2].T, s=2, c="k", alpha=0.5, label="real")
    ax.scatter(*fake[:, :2].T, s=3, c="tab:orange", label="generated")
    norms = push.norm(dim=1)
    width = extent[1] - extent[0]
    ref = float(norms.quantile(0.9)) if len(norms) else 0.0
    if ref > 0:
        ax.quiver(*at[:, :2].T, *push[:, :2].T, angles="xy", scale_units="xy", scale=ref / (0.08 * width),
                  width=0.004, color="k", alpha=0.8)
    med = float(norms.median()) if len(norms) else 0.0
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.legend(fontsize=7, loc="upper right", markerscale=3)
    ax.set_title(f"{title}\narrows: -d loss_G / dx, median norm {med:.2e}".strip(), fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def save_samples(x: Tensor, path: str | Path, *, kind: str, nrow: int | None = None, **points_kw) -> Path:
    """Images as a grid, points as a scatter: whichever the data is. One image is written as it is
    (its own size, no border), so that another command can take it as its input."""
    if kind == "points":
        return save_points(x, path, **points_kw)
    if len(x) == 1:
        return save_image_grid(x, path, pad=0, min_side=0)
    return save_image_grid(x, path, nrow)


def save_reconstructions(x: Tensor, x_hat: Tensor, path: str | Path, *, nrow: int = 16) -> Path:
    """Inputs in the upper rows of each pair, their reconstructions below."""
    rows = []
    for start in range(0, len(x), nrow):
        rows += [x[start:start + nrow], x_hat[start:start + nrow]]
    return save_image_grid(torch.cat(rows), path, nrow)


def save_manifold(decode, path: str | Path, *, steps: int = 20, span: float = 0.95) -> Path:
    """For a 2-D latent: decode a grid of z at Gaussian quantiles (Kingma & Welling, Fig. 4)."""
    from scipy.stats import norm

    q = torch.tensor(norm.ppf(np.linspace(1 - span, span, steps)), dtype=torch.float32)
    zy, zx = torch.meshgrid(q.flip(0), q, indexing="ij")
    z = torch.stack([zx.reshape(-1), zy.reshape(-1)], dim=1)  # (steps^2, 2)
    with torch.no_grad():
        x = decode(z)
    return save_image_grid(x, path, steps, min_side=560)


def save_latent_scatter(z: Tensor, path: str | Path, *, labels: Tensor | None = None,
                        class_names: list[str] | None = None, title: str = "") -> Path:
    """2-D view of codes: the latent itself when 2-D, else its first two principal components."""
    from sklearn.decomposition import PCA

    z = z.detach().cpu().numpy()
    how = "z"
    if z.shape[1] > 2:
        z, how = PCA(n_components=2, random_state=0).fit_transform(z), "PCA of z"
    elif z.shape[1] == 1:
        z = np.concatenate([z, np.zeros_like(z)], axis=1)
    fig, ax = figure(figsize=(5.2, 4.5))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=4, alpha=0.7)
    else:
        labels = labels.cpu().numpy()
        for k in np.unique(labels):
            m = labels == k
            name = class_names[k] if class_names and k < len(class_names) else str(k)
            ax.scatter(z[m, 0], z[m, 1], s=4, alpha=0.7, label=name)
        ax.legend(fontsize=7, markerscale=3, loc="best", ncol=2)
    ax.set_title(title or f"latent codes ({how})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)
