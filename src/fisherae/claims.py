"""The paper's MNIST claims (Section 4: Figures 1-3, Table 1's ordering) tested on our outputs.

Each claim is a comparison of curves or numbers that our figures' tidy CSVs already hold, with a
stated criterion, so a verdict (reproduced / not reproduced / mixed) is computed, not chosen.
Two means differ when they are more than ``SE_FACTOR`` combined standard errors apart
(sd / sqrt(n) over test batches, t-SNE seeds or FID draws); otherwise they tie.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fisherae.errors import UserError
from fisherae.markdown import markdown_table
from fisherae.paper import model_roles

SE_FACTOR = 2.0
COMPARABLE = 0.10  # "comparable": within 10 % of each other
COLLAPSED = 0.9  # error / mean-image error above this: the encoder is (nearly) ignoring its input
PANELS = {"nbce": "normalised BCE", "bce": "BCE", "nmi": "NMI"}
CLAIM_COLUMNS = ["claim", "kind", "figure", "statement", "criterion", "verdict", "evidence"]
VERDICTS = {"paper": ("reproduced", "not reproduced", "mixed"),
            "ablation": ("supported", "not supported", "mixed")}
NOT_EVALUATED = "not evaluated"


# --------------------------------------------------------------------------- comparisons

def _standard_error(sd: float, n: int) -> float:
    return 0.0 if n < 2 or not np.isfinite(sd) else sd / math.sqrt(n)


def outcome(ours: pd.Series, other: pd.Series, lower_is_better: bool) -> str:
    """'better', 'worse' or 'tie' for two rows with mean, sd, n_values."""
    se = math.hypot(_standard_error(ours["sd"], ours["n_values"]), _standard_error(other["sd"], other["n_values"]))
    gain = (other["mean"] - ours["mean"]) if lower_is_better else (ours["mean"] - other["mean"])
    if gain > SE_FACTOR * se:
        return "better"
    return "worse" if gain < -SE_FACTOR * se else "tie"


def curve_outcomes(curves: pd.DataFrame, ours: str, others: list[str], lower_is_better: bool) -> pd.DataFrame:
    """Per noise level sigma2 > 0 and other model: does ``ours`` beat it (columns sigma2, other, outcome)?"""
    rows = []
    indexed = curves.set_index(["model", "sigma2"])
    for sigma2 in sorted(s for s in curves["sigma2"].unique() if s > 0):
        for other in others:
            rows.append({"sigma2": sigma2, "other": other, "outcome": outcome(
                indexed.loc[(ours, sigma2)], indexed.loc[(other, sigma2)], lower_is_better)})
    return pd.DataFrame(rows, columns=["sigma2", "other", "outcome"])


def verdict(outcomes: list[str], kind: str = "paper") -> str:
    """All 'better': reproduced; none 'better': not reproduced; otherwise mixed."""
    yes, no, mixed = VERDICTS[kind]
    if not outcomes:
        return NOT_EVALUATED
    wins = sum(o == "better" for o in outcomes)
    return yes if wins == len(outcomes) else no if wins == 0 else mixed


def _tally(outcomes: pd.DataFrame, labels: dict[str, str]) -> str:
    parts = []
    for other, group in outcomes.groupby("other", sort=False):
        counts = group["outcome"].value_counts()
        parts.append(f"vs {labels[other]}: better at {counts.get('better', 0)}, tie at {counts.get('tie', 0)}, "
                     f"worse at {counts.get('worse', 0)} of {len(group)} σ² > 0")
    return "; ".join(parts)


def _at(curves: pd.DataFrame, models: list[str], labels: dict[str, str], sigma2: float, what: str) -> str:
    cells = (_cell(curves, m, sigma2, 3, spread=what == "NMI") for m in models)
    return f"{what}(σ² = {sigma2:g}): " + ", ".join(f"{labels[m]} {c}" for m, c in zip(models, cells))


# --------------------------------------------------------------------------- the claims

@dataclass(frozen=True)
class Evidence:
    """Our tidy tables: Figure 1 and 3 curves (model, sigma2, mean, sd, n_values), FID per model."""

    nbce: pd.DataFrame
    bce: pd.DataFrame
    nmi: pd.DataFrame
    fid: pd.DataFrame  # model, mean, sd, n_values
    labels: dict[str, str]
    grid_sigma2: float
    error_ratio: dict[str, float]  # model -> sigma2 = 0 error / mean-image error (`diagnose`), where known


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (``kind`` 'paper') or of our ablation ('ablation'): its id, where it
    is made and what it says."""

    claim: str
    kind: str
    figure: str
    statement: str

    def row(self, criterion: str, verdict_: str, evidence: str) -> dict:
        """The claim's row of the claims table (CLAIM_COLUMNS)."""
        return {"claim": self.claim, "kind": self.kind, "figure": self.figure, "statement": self.statement,
                "criterion": criterion, "verdict": verdict_, "evidence": evidence}


@dataclass(frozen=True)
class CurveClaim(Claim):
    """Model role ``ours`` beats each of ``others`` on the curve ``panel`` (a field of Evidence) at every sigma2 > 0."""

    panel: str
    ours: str
    others: tuple[str, ...]
    lower_is_better: bool


@dataclass(frozen=True)
class FidClaim(Claim):
    """Model role ``ours`` has a lower FID than each of ``others``."""

    ours: str
    others: tuple[str, ...]


def _missing(roles: dict, needed: tuple[str, ...]) -> list[str]:
    return [r for r in needed if r not in roles]


def curve_claim(ev: Evidence, roles: dict, claim: CurveClaim) -> dict:
    """The row of a claim that model ``ours`` beats ``others`` on a curve at every sigma2 > 0."""
    curves = getattr(ev, claim.panel)
    criterion = (f"{'lower' if claim.lower_is_better else 'higher'} mean {PANELS[claim.panel]} than each of "
                 f"{', '.join(claim.others)} at every σ² > 0 (ties: within {SE_FACTOR:g} standard errors)")
    missing = _missing(roles, (claim.ours, *claim.others))
    if missing or curves.empty:
        return claim.row(criterion, NOT_EVALUATED, f"no model plays {missing}")
    models = [roles[claim.ours]] + [roles[o] for o in claim.others]
    found = curve_outcomes(curves, models[0], models[1:], claim.lower_is_better)
    top = float(curves["sigma2"].max())
    return claim.row(criterion, verdict([*found["outcome"]], claim.kind),
                     f"{_tally(found, ev.labels)}. {_at(curves, models, ev.labels, top, PANELS[claim.panel])}"
                     + (_collapse_caveat(ev, models[0]) if claim.panel == "nbce" else ""))


def _collapse_caveat(ev: Evidence, model: str) -> str:
    """A warning where a flat normalised curve may only mean that the encoder ignores its input."""
    ratio = ev.error_ratio.get(model)
    if ratio is None or ratio <= COLLAPSED:
        return ""
    return (f" CAUTION: {ev.labels[model]}'s σ² = 0 error is {ratio:.2f} × the mean-image predictor's: its encoder "
            "carries almost no information, so a flat normalised curve is not robustness")


def fid_claim(ev: Evidence, roles: dict, claim: FidClaim) -> dict:
    """The row of a claim that model ``ours`` has a lower FID than each of ``others``."""
    ours, others = claim.ours, claim.others
    criterion = f"lower mean FID than each of {', '.join(others)} (ties: within {SE_FACTOR:g} standard errors)"
    missing = _missing(roles, (ours, *others))
    fid = ev.fid.set_index("model")
    if missing or any(roles[r] not in fid.index for r in (ours, *others)):
        return claim.row(criterion, NOT_EVALUATED, f"no FID for {missing or others}")
    found = [outcome(fid.loc[roles[ours]], fid.loc[roles[o]], True) for o in others]
    numbers = ", ".join(f"{ev.labels[roles[r]]} {fid.loc[roles[r], 'mean']:.2f} ± {fid.loc[roles[r], 'sd']:.2f}"
                        for r in (ours, *others))
    return claim.row(criterion, verdict(found, claim.kind), f"FID: {numbers}")


WAE_FAILS = Claim("fig2_wae_gan_fails_on_noise", "paper", "Figure 2 (row 1)",
                  "WAE-GAN completely fails to reconstruct noisy test digits (σ² = 0.2), unlike the Fisher AE")
RECONSTRUCTION_COMPARABLE = Claim("fig2_reconstruction_comparable", "paper", "Figure 2 (row 2)",
                                  "Fisher AE's test reconstructions are comparable to WAE-GAN's")
NMI_DECAY = Claim("fig3_nmi_decay", "paper", "Figure 3",
                  "Fisher AE's NMI decays nearly linearly with σ²; VAE's and WAE-GAN's decay faster")


def wae_fails_claim(ev: Evidence, roles: dict) -> dict:
    """Figure 2, row 1: WAE-GAN 'completely fails' on noisy inputs: the highest BCE at the grid's sigma2."""
    criterion = "WAE-GAN has a higher BCE at the grid's σ² than the Fisher AE and the VAE"
    missing = _missing(roles, ("wae_gan", "fisher_exp", "vae"))
    if missing:
        return WAE_FAILS.row(criterion, NOT_EVALUATED, f"no model plays {missing}")
    rows = ev.bce.set_index(["model", "sigma2"])
    wae = rows.loc[(roles["wae_gan"], ev.grid_sigma2)]
    found = [outcome(rows.loc[(roles[r], ev.grid_sigma2)], wae, True) for r in ("fisher_exp", "vae")]
    models = [roles[r] for r in ("wae_gan", "fisher_exp", "vae")]
    return WAE_FAILS.row(criterion, verdict(found), _at(ev.bce, models, ev.labels, ev.grid_sigma2, "BCE"))


def comparable_reconstruction_claim(ev: Evidence, roles: dict) -> dict:
    """Figure 2, row 2: the Fisher AE's clean test reconstructions are comparable to WAE-GAN's."""
    criterion = f"clean BCE (σ² = 0) within {COMPARABLE:.0%} of WAE-GAN's"
    missing = _missing(roles, ("fisher_exp", "wae_gan"))
    if missing:
        return RECONSTRUCTION_COMPARABLE.row(criterion, NOT_EVALUATED, f"no model plays {missing}")
    rows = ev.bce.set_index(["model", "sigma2"])
    ours, wae = rows.loc[(roles["fisher_exp"], 0.0), "mean"], rows.loc[(roles["wae_gan"], 0.0), "mean"]
    gap = ours / wae - 1
    numbers = _at(ev.bce, [roles["fisher_exp"], roles["wae_gan"]], ev.labels, 0.0, "BCE")
    return RECONSTRUCTION_COMPARABLE.row(criterion, VERDICTS["paper"][0 if abs(gap) <= COMPARABLE else 1],
                                         f"{numbers} (Fisher AE {gap:+.1%} relative to WAE-GAN)")


def nmi_decay_claim(ev: Evidence, roles: dict) -> dict:
    """Figure 3: the Fisher AE's NMI decays nearly linearly and less than VAE's and WAE-GAN's."""
    criterion = "smaller NMI drop from σ² = 0 to the largest σ² than VAE and WAE-GAN (R² of a line fit shown)"
    missing = _missing(roles, ("fisher_exp", "vae", "wae_gan"))
    if missing or ev.nmi.empty:
        return NMI_DECAY.row(criterion, NOT_EVALUATED, f"no model plays {missing}")
    drops = {r: decay(ev.nmi[ev.nmi["model"] == roles[r]]) for r in ("fisher_exp", "vae", "wae_gan")}
    found = ["better" if drops["fisher_exp"][0] < drops[r][0] else "worse" for r in ("vae", "wae_gan")]
    text = ", ".join(f"{ev.labels[roles[r]]} drop {d:.3f} (R² {r2:.2f})" for r, (d, r2) in drops.items())
    return NMI_DECAY.row(criterion, verdict(found), text)


def decay(curve: pd.DataFrame) -> tuple[float, float]:
    """(mean at the smallest sigma2 - mean at the largest, R² of a least-squares line through the means)."""
    curve = curve.sort_values("sigma2")
    x, y = curve["sigma2"].to_numpy(float), curve["mean"].to_numpy(float)
    fit = np.polyval(np.polyfit(x, y, 1), x)
    total = np.square(y - y.mean()).sum()
    return float(y[0] - y[-1]), float(1 - np.square(y - fit).sum() / total) if total > 0 else 1.0


CURVE_CLAIMS = (
    CurveClaim("fig1_normalised_bce", "paper", "Figure 1",
               "Fisher AE (Exp. prior) is more robust to input noise: its normalised BCE grows least with σ²",
               panel="nbce", ours="fisher_exp", others=("vae", "wae_gan"), lower_is_better=True),
    CurveClaim("fig1_normalised_bce_gaussian_prior", "paper", "Figure 1",
               "the same for the Fisher AE with a Gaussian prior",
               panel="nbce", ours="fisher_gauss", others=("vae", "wae_gan"), lower_is_better=True),
    CurveClaim("fig1_bce_noisy", "paper", "Figure 1, Figure 2 (row 1)",
               "Fisher AE (Exp. prior) reconstructs noisy inputs better, in absolute BCE",
               panel="bce", ours="fisher_exp", others=("vae", "wae_gan"), lower_is_better=True),
    CurveClaim("fig3_nmi", "paper", "Figure 3",
               "Fisher AE (Exp. prior) keeps its latent clusters under noise better: higher NMI",
               panel="nmi", ours="fisher_exp", others=("vae", "wae_gan"), lower_is_better=False),
    CurveClaim("ablation_normalised_bce", "ablation", "Figure 1",
               "the exact stability term (∇x log q at fixed z) is more robust than the total-derivative variant",
               panel="nbce", ours="fisher_exp", others=("authors",), lower_is_better=True),
    CurveClaim("ablation_nmi", "ablation", "Figure 3",
               "the exact stability term keeps latent clusters better than the total-derivative variant",
               panel="nmi", ours="fisher_exp", others=("authors",), lower_is_better=False),
)
FID_CLAIMS = (
    FidClaim("fig2_wae_gan_best_samples", "paper", "Figure 2 (row 3)",
             "WAE-GAN gives the best random samples (lowest domain FID)",
             ours="wae_gan", others=("fisher_exp", "vae")),
    FidClaim("table1_order_exp_prior", "paper", "Table 1 (CelebA; MNIST analogue)",
             "the Fisher AE with the exponential-family prior samples better than the Gaussian-prior Fisher AE and "
             "the VAE", ours="fisher_exp", others=("fisher_gauss", "vae")),
)


def evaluate_claims(ev: Evidence, roles: dict) -> pd.DataFrame:
    """Every claim's row (CLAIM_COLUMNS): the paper's curve claims, then its other claims, then the
    ablation's; claims whose models are not configured say 'not evaluated'."""
    rows = [curve_claim(ev, roles, claim) for claim in CURVE_CLAIMS if claim.kind == "paper"]
    rows += [nmi_decay_claim(ev, roles), wae_fails_claim(ev, roles), comparable_reconstruction_claim(ev, roles)]
    rows += [fid_claim(ev, roles, claim) for claim in FID_CLAIMS]
    rows += [curve_claim(ev, roles, claim) for claim in CURVE_CLAIMS if claim.kind == "ablation"]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


# --------------------------------------------------------------------------- inputs and tables

def load_evidence(figure1: pd.DataFrame, figure3: pd.DataFrame, table1: pd.DataFrame, diagnostics: pd.DataFrame,
                  labels: dict[str, str], grid_sigma2: float) -> Evidence:
    """Evidence from the tidy CSVs of `figure --name figure1/figure3`, `table1` (MNIST rows) and `diagnose`."""
    curve = ["model", "sigma2", "mean", "sd", "n_values"]
    mnist = table1[(table1["dataset"] == "mnist") & (table1["status"] == "ok")]
    fid = pd.DataFrame({"model": mnist["model"], "mean": mnist["fid_mean"], "sd": mnist["fid_sd"].fillna(0.0),
                        "n_values": mnist["n_draws"]})  # all seeds x draws
    return Evidence(nbce=figure1.loc[figure1["panel"] == "bce_normalised", curve].reset_index(drop=True),
                    bce=figure1.loc[figure1["panel"] == "bce", curve].reset_index(drop=True),
                    nmi=figure3[curve].reset_index(drop=True), fid=fid.reset_index(drop=True), labels=labels,
                    grid_sigma2=grid_sigma2, error_ratio=per_model(diagnostics, "error_ratio"))


def per_model(diagnostics: pd.DataFrame, column: str) -> dict[str, float]:
    """``column`` of the `diagnose` rows, averaged over seeds, per model."""
    if diagnostics.empty:
        return {}
    return diagnostics.groupby("model")[column].mean().to_dict()


SUMMARY_HEADERS = ["model", "BCE σ²=0", "BCE σ²={grid:g}", "BCE σ²={top:g}", "nBCE σ²={top:g}",
                   "NMI σ²=0", "NMI σ²={top_nmi:g}", "domain FID", "error / mean-image error", "latent probe acc."]


def model_summary(ev: Evidence, probe: dict[str, float], models: list[str]) -> pd.DataFrame:
    """One row per model: the numbers behind the claims, as text (mean ± sd where there is a spread)."""
    top = float(ev.bce["sigma2"].max())
    top_nmi = float(ev.nmi["sigma2"].max()) if not ev.nmi.empty else top
    fid = ev.fid.set_index("model")
    rows = []
    for m in models:
        rows.append([ev.labels[m], _cell(ev.bce, m, 0.0, 1), _cell(ev.bce, m, ev.grid_sigma2, 1),
                     _cell(ev.bce, m, top, 1), _cell(ev.nbce, m, top, 3), _cell(ev.nmi, m, 0.0, 3, True),
                     _cell(ev.nmi, m, top_nmi, 3, True),
                     f"{fid.loc[m, 'mean']:.2f} ± {fid.loc[m, 'sd']:.2f}" if m in fid.index else "—",
                     f"{ev.error_ratio[m]:.3f}" if m in ev.error_ratio else "—",
                     f"{probe[m]:.3f}" if m in probe else "—"])
    headers = [h.format(grid=ev.grid_sigma2, top=top, top_nmi=top_nmi) for h in SUMMARY_HEADERS]
    return pd.DataFrame(rows, columns=headers)


def _cell(curves: pd.DataFrame, model: str, sigma2: float, digits: int, spread: bool = False) -> str:
    row = curves[(curves["model"] == model) & np.isclose(curves["sigma2"], sigma2)]
    if row.empty:
        return "—"
    mean, sd = row["mean"].iloc[0], row["sd"].iloc[0]
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if spread else f"{mean:.{digits}f}"


# --------------------------------------------------------------------------- one run's claims, in Markdown

def claims_of_run(config: dict, figure1: pd.DataFrame, figure3: pd.DataFrame, table1: pd.DataFrame,
                  diagnostics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claims, numbers per model) of the run that ``config`` made, from the tidy CSVs of its
    Figures 1 and 3, its Table 1 and its `diagnose` rows."""
    labels = {name: spec.get("label", name) for name, spec in config["models"].items()}
    grid_sigma2 = config["evaluation"]["grids"]["noise_sigma2"].get("mnist", 0.2)
    try:
        evidence = load_evidence(figure1, figure3, table1, diagnostics, labels, grid_sigma2)
        claims = evaluate_claims(evidence, model_roles(config["models"]))
        models = [m for m in config["models"] if m in set(evidence.bce["model"])]
        summary = model_summary(evidence, per_model(diagnostics, "probe_accuracy"), models)
    except KeyError as err:
        raise UserError(f"claims: a model or noise level is missing from the inputs ({err}); give the figures and "
                        "tables of one run made from --config") from err
    return claims, summary


def classifier_accuracy(path: str | None) -> str:
    """The domain classifier's test accuracy, quoted from the metrics JSON of `train-classifier`."""
    if path is None:
        return "no domain classifier given"
    try:
        metrics = json.loads(Path(path).read_text())
        return f"domain classifier test accuracy {metrics['test_accuracy']:.4f} ({metrics['n_test']} test digits)"
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path} is not the metrics JSON written by `train-classifier` ({err})") from err


def claims_markdown(claims: pd.DataFrame, summary: pd.DataFrame, classifier: str, config: dict) -> str:
    """tables/claims_mnist.md: the claims with their verdicts, then the numbers per model."""
    shown = claims.rename(columns={"statement": "claim tested", "evidence": "our numbers"})
    return "\n".join([
        "# MNIST: the paper's claims tested on this run", "",
        f"Run: `{config['results']}`, training seeds {config['seeds']}; {classifier}. Verdicts are computed "
        f"(`python -m fisherae claims`): two means tie when they are within {SE_FACTOR:g} combined standard "
        "errors (sd/√n over test batches, t-SNE/k-means seeds or FID draws).", "",
        markdown_table(shown[["claim", "figure", "claim tested", "criterion", "verdict", "our numbers"]]), "",
        "## Numbers per model", "",
        markdown_table(summary), "",
        "BCE: per-image binary cross-entropy of f(μ(x + noise)) against the clean x (sum over 784 pixels); "
        "nBCE = BCE(σ²)/BCE(0). NMI: mean ± sd over t-SNE/k-means seeds. Domain FID: Fréchet distance of "
        "prior samples' decodings to the test digits in the classifier's penultimate layer (mean ± sd over "
        "draws). Error / mean-image error: the σ² = 0 squared error of f(μ(x)) over that of the mean training "
        "image (≈ 1: the encoder carries no information). Latent probe: logistic regression on μ(x).", ""])
