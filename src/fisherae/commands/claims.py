"""``claims``: the paper's MNIST claims judged over the training seeds of one run, and
``reproduction``: the same over all published parts, with the readings and the epochs
(``fisherae.claims``, ``fisherae.reproduction``; docs/cli.md)."""

from __future__ import annotations

from fisherae.commands.common import read_config
from fisherae.commands.registry import command
from fisherae.config_keys import PART_KEYS


@command("claims", "the paper's MNIST claims (Figures 1-3, Table 1's ordering) judged over one run's training "
                   "seeds: CSV + Markdown")
def setup_claims(parser):
    parser.add_argument("--config", required=True, help="the run's YAML config (models, labels, grid noise)")
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="the run's per-run CSVs: sweeps/, latent/, fid/, fid_exact/, diagnostics/ (and latent_full/, "
                             "snapshots/ where made) under the results root")
    parser.add_argument("--classifier", help="the MNIST classifier's metrics JSON (its test accuracy is quoted)")
    parser.add_argument("--out-csv", required=True, help="CSV: one row per claim, arm and baseline (docs/cli.md)")
    parser.add_argument("--out-md", required=True, help="Markdown: the claims and the numbers per model")
    return run_claims


def run_claims(args) -> None:
    from fisherae.checkpoint import atomic_write_text
    from fisherae.claims import claims_table, classifier_accuracy, evidence_of, judge_all
    from fisherae.claims_report import claims_markdown
    from fisherae.run_summaries import run_summaries

    config = read_config(args)
    runs, notes = run_summaries(args.inputs)
    ev = evidence_of(config, runs)
    judged = judge_all(ev)
    header = (f"# MNIST: the paper's claims tested on this run\n\nRun: `{config['results']}`, training seeds "
              f"{config['seeds']}; {classifier_accuracy(args.classifier)}.")
    markdown = claims_markdown(ev, judged, header, notes)
    atomic_write_text(args.out_csv, claims_table(judged).to_csv(index=False))
    atomic_write_text(args.out_md, markdown)
    print(args.out_md)


@command("reproduction", "the paper's MNIST claims over all published parts of a reproduction, with their "
                         "sensitivity to the readings and their trajectory over epochs: CSV + Markdown")
def setup_reproduction(parser):
    parser.add_argument("--parts", nargs="+", required=True,
                        help="directories written by `publish` (each with config.yaml; they may differ in "
                             f"{', '.join(PART_KEYS)} only)")
    parser.add_argument("--out", required=True, help="directory for claims_mnist, sensitivity_mnist, "
                                                     "trajectory_mnist (.csv, .md) and trajectory_verdicts_mnist.csv")
    return run_reproduction


def run_reproduction(args) -> None:
    from fisherae.reproduction import reproduction

    for path in reproduction(args.parts, args.out):
        print(path)
