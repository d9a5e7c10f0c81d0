"""The claims over all published parts of one reproduction (issue 12): a part is one invocation
of the DAG (some seeds of some models), published with its config.yaml; parts may differ in
PART_KEYS only (``seeds``, a model's own ``seeds``, ``run_models``, ``results``). Writes the claims, their
sensitivity to the readings and their trajectory over the snapshot epochs (CSV + Markdown,
atomically), and Figures 1 and 3 over every part's runs (seed means with t 95 % intervals over
training seeds)."""

from __future__ import annotations

from pathlib import Path

from fisherae.checkpoint import atomic_write_text
from fisherae.claims import claims_table, evidence_of, judge_all, sensitivity_table, trajectory_table, \
    trajectory_verdicts
from fisherae.claims_report import claims_markdown, sensitivity_markdown, trajectory_markdown
from fisherae.config import load_config
from fisherae.config_keys import PART_KEYS, changed_values
from fisherae.errors import UserError
from fisherae.paper import FIGURE_BY_NAME
from fisherae.plots import save_figure
from fisherae.run_summaries import find_run_files, run_summaries

SEED_FIGURES = ("figure1", "figure3")  # drawn over every part's runs


def _shared(config: dict) -> dict:
    """``config`` without PART_KEYS: what every part of one reproduction must agree on."""
    shared = {key: value for key, value in config.items() if key not in PART_KEYS}
    per_model = {key.split(".")[-1] for key in PART_KEYS if key.startswith("models.*.")}
    shared["models"] = {name: {key: value for key, value in entry.items() if key not in per_model}
                        for name, entry in config["models"].items()}
    return shared


def differing_keys(a: dict, b: dict) -> list[str]:
    """The dotted keys (other than PART_KEYS) whose values differ between configs ``a`` and ``b``."""
    return sorted(key for key, _, _ in changed_values(_shared(a), _shared(b)))


def part_config(parts: list[Path]) -> dict:
    """The config shared by ``parts`` (seeds: all of theirs; results: the parts; no run_models);
    UserError naming the keys where two differ."""
    configs = []
    for part in parts:
        if not (part / "config.yaml").is_file():
            raise UserError(f"{part} has no config.yaml; give the directories written by `publish`")
        configs.append(load_config(part / "config.yaml"))
    for part, config in zip(parts[1:], configs[1:]):
        keys = differing_keys(configs[0], config)
        if keys:
            raise UserError(f"{part}/config.yaml differs from {parts[0]}/config.yaml in {', '.join(keys)} (parts may "
                            f"differ in {', '.join(PART_KEYS)} only); give the parts of one reproduction")
    seeds = sorted({s for c in configs for s in c["seeds"]})
    return {**_shared(configs[0]), "seeds": seeds, "results": ", ".join(map(str, parts))}


def reproduction(parts: list[str], out: str) -> list[Path]:
    """Judge the claims over ``parts`` and write the claims, sensitivity and trajectory tables into ``out``; their paths."""
    dirs = [Path(p) for p in parts]
    config = part_config(dirs)
    runs, notes = run_summaries([f for d in dirs for f in find_run_files(d)])
    if runs.empty:
        raise UserError(f"no per-run CSVs under {', '.join(parts)}; give the directories written by `publish`")
    ev = evidence_of(config, runs)
    judged = judge_all(ev)
    header = (f"# MNIST: the paper's claims over {len(dirs)} part(s)\n\nParts: {config['results']}; training seeds "
              f"{config['seeds']}.")
    summaries, verdicts, sensitivity = trajectory_table(ev), trajectory_verdicts(ev), sensitivity_table(ev)
    texts = {"claims_mnist.csv": claims_table(judged).to_csv(index=False),
             "claims_mnist.md": claims_markdown(ev, judged, header, notes),
             "sensitivity_mnist.csv": sensitivity.to_csv(index=False),
             "sensitivity_mnist.md": sensitivity_markdown(sensitivity),
             "trajectory_mnist.csv": summaries.to_csv(index=False),
             "trajectory_verdicts_mnist.csv": verdicts.to_csv(index=False),
             "trajectory_mnist.md": trajectory_markdown(summaries, verdicts)}
    written = [atomic_write_text(Path(out) / name, text) for name, text in texts.items()]
    return written + [path for name in SEED_FIGURES for path in seed_figure(name, dirs, config, Path(out))]


def seed_figure(name: str, parts: list[Path], config: dict, out: Path) -> list[Path]:
    """Figure ``name`` drawn from the final-epoch runs of every part: <stem>.png and <stem>.csv in ``out``."""
    from fisherae.figures import paper_figure

    figure = FIGURE_BY_NAME[name]
    pattern = figure.inputs.format(dataset=figure.dataset, model="*", seed="*")
    inputs = sorted(str(p) for part in parts for p in part.glob(pattern))
    fig, tidy = paper_figure(name, inputs, config)
    return [save_figure(fig, out / f"{figure.stem}.png"),
            atomic_write_text(out / f"{figure.stem}.csv", tidy.to_csv(index=False))]
