"""Forcing the latent to mean something: novel-view synthesis with a model's named units
(``genlab transform``). The model is ``genlab.models.dcign``; the metrics are in
``genlab.evaluation.semantics``."""
