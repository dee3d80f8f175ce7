"""Sub-commands of the latent tools (parsers only; the work is in ``genlab.latent.commands``)."""

from __future__ import annotations


def add_parsers(sub, common) -> None:
    """Add this group's sub-commands to ``sub`` (argparse sub-parsers); ``common`` has the shared
    argument helpers (``common.run(p)``, ``common.data(p, what)``)."""
