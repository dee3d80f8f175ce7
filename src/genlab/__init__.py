"""genlab: generative neural networks that train for real on a laptop CPU, with honest metrics.

Data flows ``data -> models -> training -> runs/<id>/ -> evaluation | latent``; the CLI drives each step.
Images are float tensors in [0, 1] everywhere inside the library, shaped (N, C, H, W).
"""

__version__ = "0.1.0"
