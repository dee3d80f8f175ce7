"""Self-contained HTML run reports (``genlab report``) and the lecture as one command (``genlab tour``)."""

from .run_pages import write_report

__all__ = ["write_report"]
