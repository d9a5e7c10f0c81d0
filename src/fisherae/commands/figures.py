"""``figure``: one of the paper's Figures 1-6 from the evaluation outputs (``fisherae.figures``;
docs/cli.md)."""

from __future__ import annotations

from fisherae.commands.common import read_config
from fisherae.commands.registry import command
from fisherae.paper import FIGURE_BY_NAME


@command("figure", "one of the paper's Figures 1-6 from the evaluation outputs (+ the tidy data behind it)")
def setup_figure(parser):
    parser.add_argument("--config", required=True, help="YAML config (the models, their labels in config order, and the training named in the title)")
    parser.add_argument("--name", required=True, choices=sorted(FIGURE_BY_NAME))
    parser.add_argument("--inputs", required=True, nargs="+", help="sweep CSVs, grid PNGs, latent CSVs or NPZs")
    parser.add_argument("--out", required=True, help="image to write (PNG, or PDF/SVG by suffix)")
    parser.add_argument("--out-csv", help="CSV of the data plotted")
    return run_figure


def run_figure(args) -> None:
    from fisherae import plots
    from fisherae.checkpoint import atomic_write_text
    from fisherae.figures import paper_figure

    config = read_config(args, dataset=FIGURE_BY_NAME[args.name].dataset)
    plots.figure_format(args.out)  # a name matplotlib cannot write refused before the work
    fig, tidy = paper_figure(args.name, args.inputs, config)
    plots.save_figure(fig, args.out)
    if args.out_csv:
        atomic_write_text(args.out_csv, tidy.to_csv(index=False))
    print(args.out)
