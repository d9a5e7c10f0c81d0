"""``claims``: the paper's MNIST claims tested on one run (``fisherae.claims``; docs/cli.md)."""

from __future__ import annotations

import pandas as pd

from fisherae.claims import CLAIM_COLUMNS
from fisherae.commands.common import read_config
from fisherae.commands.registry import command
from fisherae.errors import UserError


@command("claims", "the paper's MNIST claims (Figures 1-3, Table 1's ordering) tested on one run: CSV + Markdown")
def setup_claims(parser):
    parser.add_argument("--config", required=True, help="the run's YAML config (models, labels, grid noise)")
    parser.add_argument("--figure1", required=True, help="figure1_mnist_bce.csv written by `figure`")
    parser.add_argument("--figure3", required=True, help="figure3_mnist_nmi.csv written by `figure`")
    parser.add_argument("--table1", required=True, help="table1_fid.csv written by `table1`")
    parser.add_argument("--classifier", help="the MNIST classifier's metrics JSON (its test accuracy is quoted)")
    parser.add_argument("--diagnostics", nargs="*", default=[], help="CSVs written by `diagnose`")
    parser.add_argument("--out-csv", required=True, help="CSV: " + ", ".join(CLAIM_COLUMNS))
    parser.add_argument("--out-md", required=True, help="Markdown: the claims and the numbers per model")
    return run_claims


def _read_csv(path: str, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise UserError(f"{path} is not a readable {what} CSV ({err}); regenerate it with the pipeline") from err


def run_claims(args) -> None:
    from fisherae.checkpoint import atomic_write_text
    from fisherae.claims import claims_markdown, claims_of_run, classifier_accuracy

    config = read_config(args)
    diagnostics = pd.concat([_read_csv(p, "diagnostics") for p in args.diagnostics] or [pd.DataFrame()])
    claims, summary = claims_of_run(config, _read_csv(args.figure1, "Figure 1"), _read_csv(args.figure3, "Figure 3"),
                                    _read_csv(args.table1, "Table 1"), diagnostics)
    atomic_write_text(args.out_csv, claims.to_csv(index=False))
    atomic_write_text(args.out_md, claims_markdown(claims, summary, classifier_accuracy(args.classifier), config))
    print(args.out_md)
