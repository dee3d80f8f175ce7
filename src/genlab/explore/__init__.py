"""`genlab explore`: a local web page over the latent spaces of trained runs (see ``app``, ``session``)."""
