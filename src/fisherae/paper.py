"""The paper's objects, listed once (Elkhalil et al., *Fisher Auto-Encoders*, AISTATS 2021):
Figures 1-6, Table 1 with the numbers and the setting it reports, and the parts that configured
models play in its comparisons. Read by the Snakefile (workflow/rules/common.smk), the commands
and the tests; a leaf module (it imports nothing of fisherae)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One of the paper's figures as this pipeline makes it."""

    stem: str  # its files under <results>/figures/: <stem>.png and <stem>.csv
    name: str  # `python -m fisherae figure --name`
    dataset: str
    inputs: str  # the per-run files it summarises, under the results root
    all_seeds: bool  # every training seed plotted, or only the first seed's panel


FIGURES = (
    Figure("figure1_mnist_bce", "figure1", "mnist", "sweeps/{dataset}/{model}/seed{seed}.csv", True),
    Figure("figure2_mnist_grids", "figure2", "mnist", "grids/{dataset}/{model}/seed{seed}.png", False),
    Figure("figure3_mnist_nmi", "figure3", "mnist", "latent/{dataset}/{model}/seed{seed}.csv", True),
    Figure("figure4_mnist_tsne", "figure4", "mnist", "latent/{dataset}/{model}/seed{seed}.npz", False),
    Figure("figure5_celeba_mse", "figure5", "celeba", "sweeps/{dataset}/{model}/seed{seed}.csv", True),
    Figure("figure6_celeba_grids", "figure6", "celeba", "grids/{dataset}/{model}/seed{seed}.png", False),
)
FIGURE_BY_STEM = {figure.stem: figure for figure in FIGURES}
FIGURE_BY_NAME = {figure.name: figure for figure in FIGURES}


# The noise axes of the paper's figures (levels of sigma2 as printed): the grids the claims summarise
# a curve over (fisherae.run_summaries). Read as standard deviations s, the levels are s**2.
NOISE_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # Figure 1
NMI_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)  # Figure 3


@dataclass(frozen=True)
class Table:
    """The paper's Table 1: FID of prior samples on CelebA 64x64 in Inception pool3 features, and
    the setting (Section 4) our numbers must be made in to be comparable to it."""

    stem: str  # its files under <results>/tables/: <stem>.csv and <stem>.md
    dataset: str
    fid: dict[str, tuple[float, float]]  # algorithm -> (mean, sd) as reported
    min_samples: int  # samples per FID: the paper states none; Heusel et al. (2017) recommend at least 10 000
    data: dict  # datasets.celeba keys
    training: dict  # training keys
    poly_order: int  # K of the polynomial prior (eq. 13), in its unconstrained form


TABLE1 = Table(
    stem="table1_fid", dataset="celeba",
    fid={"VAE": (89.1, 1.1), "Fisher AE (Gaussian prior)": (89.1, 0.9), "Fisher AE (Exp. prior)": (84.7, 0.8),
         "WAE-GAN": (75.2, 1.0)},
    min_samples=10000,
    data={"source": "torchvision", "n_train": None, "n_test": None, "latent_dim": 64, "width": 128},
    training={"epochs": 100, "batch_size": 128, "lr": 2e-4, "betas": [0.5, 0.999]},
    poly_order=5,
)


@dataclass(frozen=True)
class Role:
    """A part a configured model plays in the comparisons: the paper's arms (with their row of
    Table 1), the authors' public code, the two factors in which that code departs from eq. 10,
    and, beyond the paper, the normalisable polynomial prior (K even, sampled exactly)."""

    name: str
    method: str
    prior: str | None = None
    variant: str = "exact"
    normalisable: bool = False  # the polynomial prior's normalisable form (polynomial priors only)
    table1: str | None = None

    def matches(self, spec: dict, default_normalisable: bool = False) -> bool:
        """Whether the model entry ``spec`` plays this role (``default_normalisable``: the
        training.poly_normalisable its entry falls back on)."""
        if spec["method"] != self.method or spec.get("fisher_variant", "exact") != self.variant:
            return False
        if self.prior is None:
            return True
        normalisable = spec.get("poly_normalisable", default_normalisable)
        return spec.get("prior") == self.prior and (self.prior != "polynomial" or normalisable == self.normalisable)


ROLES = (Role("fisher_exp", "fisher_ae", "polynomial", table1="Fisher AE (Exp. prior)"),
         Role("fisher_gauss", "fisher_ae", "gaussian", table1="Fisher AE (Gaussian prior)"),
         Role("vae", "vae", table1="VAE"), Role("wae_gan", "wae_gan", table1="WAE-GAN"),
         Role("authors", "fisher_ae", "polynomial", "reparam_total_derivative"),
         Role("stability_only", "fisher_ae", "polynomial", "total_derivative_stability"),
         Role("detach_only", "fisher_ae", "polynomial", "detached_decoder_score"),
         Role("fisher_normalisable", "fisher_ae", "polynomial", normalisable=True))


def role_of(spec: dict, default_normalisable: bool = False) -> Role | None:
    """The role a model with config entry ``spec`` plays (None if it plays none)."""
    return next((role for role in ROLES if role.matches(spec, default_normalisable)), None)


def paper_algorithm(spec: dict, default_normalisable: bool = False) -> str | None:
    """The paper's Table 1 row a configured model reproduces (None for the other arms)."""
    role = role_of(spec, default_normalisable)
    return role and role.table1


def model_roles(models: dict, default_normalisable: bool = False) -> dict[str, str]:
    """Role name -> the first configured model (in config order) that plays it."""
    roles = {}
    for role in ROLES:
        found = [name for name, spec in models.items() if role.matches(spec, default_normalisable)]
        if found:
            roles[role.name] = found[0]
    return roles
