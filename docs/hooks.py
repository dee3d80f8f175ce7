"""MkDocs hooks of genlab's documentation (``mkdocs.yml``: ``hooks: [docs/hooks.py]``).

- ``<!-- options: NAME -->`` in a page becomes the table of a config's options, read from the field
  declarations (``option(default, doc, min=..., choices=...)``) exactly as ``genlab train NAME --help`` lists
  them: NAME is a model (``vae``, ``wgan-gp``), ``train`` or ``data``. The pages cannot drift from the code.
- The nav entry ``Notebooks: notebooks/`` becomes one entry per executed notebook in ``docs/notebooks/``
  (written by ``make notebooks``), or disappears when there is none.
"""

from __future__ import annotations

import re

OPTIONS = re.compile(r"<!--\s*options:\s*([\w-]+)\s*-->")
NOTEBOOKS_ENTRY = "notebooks/"


def _config(name: str):
    from genlab.config import DataConfig, TrainConfig
    from genlab.registry import MODELS

    if name == "train":
        return TrainConfig()
    if name == "data":
        return DataConfig()
    if name not in MODELS:
        raise ValueError(f"<!-- options: {name} -->: no model, train or data config of that name")
    return MODELS.get(name).Config()


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def options_table(name: str) -> str:
    """The markdown table of a config's options: ``--set`` name, type or choices, default, doc, range."""
    from genlab.config import option_rows

    lines = ["| option | type | default | what it is | range |", "|---|---|---|---|---|"]
    for row in option_rows(_config(name)):
        lines.append(f"| `{row.name}` | {_cell(row.kind)} | `{_cell(row.value)}` | {_cell(row.doc)} | "
                     f"{_cell(row.rules)} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return OPTIONS.sub(lambda m: options_table(m.group(1)), markdown)


def _expand_notebooks(items: list, notebooks: list[str]) -> list:
    out = []
    for item in items:
        if isinstance(item, dict):
            ((title, value),) = item.items()
            if value == NOTEBOOKS_ENTRY:
                if notebooks:
                    out.append({title: notebooks})
                continue
            if isinstance(value, list):
                item = {title: _expand_notebooks(value, notebooks)}
        out.append(item)
    return out


def on_files(files, config):
    notebooks = sorted(f.src_uri for f in files if re.fullmatch(r"notebooks/[^/]+\.ipynb", f.src_uri))
    config["nav"] = _expand_notebooks(config["nav"], notebooks)
    return files
