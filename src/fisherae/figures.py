"""The paper's Figures 1-6 (``fisherae.paper.FIGURES``) from the evaluation outputs: each input
read and checked, the figure drawn by ``fisherae.plots``, with the tidy data behind it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fisherae import plots
from fisherae.errors import UserError
from fisherae.evaluation import SWEEP_COLUMNS
from fisherae.latent import NMI_COLUMNS, read_embeddings
from fisherae.paper import FIGURE_BY_NAME


def read_tables(paths: list[str], columns: list[str]) -> pd.DataFrame:
    """The CSVs at ``paths``, concatenated; a UserError naming any without exactly ``columns``."""
    tables = []
    for path in paths:
        table = pd.read_csv(path)
        if list(table.columns) != columns:
            raise UserError(f"{path}: columns {list(table.columns)}, expected {columns}; regenerate it with the "
                            "matching fisherae command")
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def read_grids(paths: list[str]) -> list[tuple[str, np.ndarray, dict]]:
    """(path, image, metadata) of the first grid PNG of each model: one panel per model."""
    grids, seen = [], set()
    for path in paths:
        image, meta = plots.read_grid_png(path)
        if meta["model"] not in seen:
            seen.add(meta["model"])
            grids.append((path, image, meta))
    return grids


def _styled(config: dict, models) -> plots.ModelStyle:
    return plots.ModelStyle.from_config(config, list(models))


def draw(name: str, inputs: list[str], config: dict):
    """(figure, tidy data) of the paper's figure ``name`` (figure1 ... figure6) from ``inputs``."""
    dataset = FIGURE_BY_NAME[name].dataset
    if name in ("figure1", "figure5"):
        table = read_tables(inputs, SWEEP_COLUMNS)
        return (plots.figure1 if name == "figure1" else plots.figure5)(table, _styled(config, table["model"].unique()))
    if name == "figure3":
        table = read_tables(inputs, NMI_COLUMNS)
        return plots.figure3(table, _styled(config, table["model"].unique()))
    if name == "figure4":
        embeddings = read_embeddings(inputs)
        return plots.figure4(embeddings, _styled(config, [str(e["model"]) for e in embeddings]))
    grids = read_grids(inputs)
    others = sorted({g[2]["dataset"] for g in grids} - {dataset})
    if others:
        raise ValueError(f"{name} shows {dataset} grids; got grids of {others}")
    return plots.figure_grids(grids, name, dataset, _styled(config, [g[2]["model"] for g in grids]))


def paper_figure(name: str, inputs: list[str], config: dict):
    """``draw``, with bad or missing inputs as a UserError and our training setting noted under
    the title where the config trains the figure's data set."""
    try:
        fig, tidy = draw(name, inputs, config)
    except (ValueError, KeyError, OSError) as err:  # bad content, missing or unreadable input files
        raise UserError(f"figure {name}: {err}") from err
    dataset = FIGURE_BY_NAME[name].dataset
    if dataset in config["datasets"]:
        plots.add_note(fig, plots.training_note(config, dataset))
    return fig, tidy
