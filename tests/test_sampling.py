"""Prior samplers: SVGD (Liu & Wang, 2016; the paper's Section 4 sampler) against brute-force
references and known targets, the exact inverse-CDF sampler of the polynomial prior (eq. 13)
against an independent numerical integration, the refusals for unnormalisable priors, and the
``sample`` command on tiny checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import integrate, stats

from fisherae import sampling
from fisherae import svgd as svgd_module
from fisherae.checkpoint import save_model
from fisherae.cli import main
from fisherae.errors import NotNormalisableError, SamplesFileError, SVGDDivergedError
from fisherae.exact_sampler import sample_prior
from fisherae.metrics import marginal_distances, wasserstein_to_cdf
from fisherae.models import AutoEncoder, ModelSpec
from fisherae.prior_analysis import escape_region, marginal_grid
from fisherae.priors import GaussianPrior, PolynomialPrior
from fisherae.sampling import LatentSamples, read_samples, sample_latents, write_samples
from fisherae.sampling_report import REPORT_COLUMNS
from fisherae.svgd import median_bandwidth, stein_direction, svgd



def asymmetric_k4_prior(dim=3) -> PolynomialPrior:
    """A normalisable K = 4 prior with odd terms (skewed) and different quartic strengths."""
    prior = PolynomialPrior(dim, 4, normalisable=True)
    with torch.no_grad():
        prior.eta_lower.copy_(torch.tensor([[0.5, -0.3, 0.2], [-0.4, -0.6, -0.25], [0.1, 0.4, 0.3]])[:dim])
        prior.top_raw.copy_(torch.tensor([0.56, 0.83, 1.15])[:dim])  # eta_4 = -(rho^2 + 1e-4): -0.31, -0.69, -1.32
    return prior


def odd_prior(eta) -> PolynomialPrior:
    prior = PolynomialPrior(len(eta), len(eta[0]))
    with torch.no_grad():
        prior.eta.copy_(torch.tensor(eta))
    return prior


# --------------------------------------------------------------------------- SVGD: exactness

def brute_force_phi(x, score, h):
    """phi(x_i) = 1/n sum_j [k(x_j, x_i) score(x_j) + grad_{x_j} k(x_j, x_i)], k = exp(-|x - y|^2 / h),
    one particle pair at a time, the kernel gradient by autograd."""
    kernel = lambda a, b: torch.exp(-((a - b) ** 2).sum() / h)  # noqa: E731
    grad_k = torch.func.grad(kernel)
    n = x.shape[0]
    phi = torch.zeros_like(x)
    for i in range(n):
        for j in range(n):
            phi[i] += kernel(x[j], x[i]) * score(x[j:j + 1])[0] + grad_k(x[j], x[i])
    return phi / n


def test_stein_direction_matches_brute_force_and_chunks():
    torch.manual_seed(0)
    x = torch.randn(9, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    score = lambda z: -(z - 1.0) ** 3  # noqa: E731
    h = median_bandwidth(x)
    reference = brute_force_phi(x, score, h)
    torch.testing.assert_close(stein_direction(x, score(x)), reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stein_direction(x, score(x), chunk_size=4), reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stein_direction(x, score(x), bandwidth=0.7),
                               brute_force_phi(x, score, 0.7), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [7, 8])
def test_median_bandwidth_is_the_median_heuristic(n):
    """h = med^2 / log(n + 1), med^2 the median over the full n x n squared-distance matrix
    (diagonal included), averaging the middle pair when n^2 is even, as numpy does."""
    torch.manual_seed(n)
    x = torch.randn(n, 2, dtype=torch.float64)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1).numpy()
    assert median_bandwidth(x) == pytest.approx(np.median(d2) / math.log(n + 1), rel=1e-12)
    assert median_bandwidth(torch.zeros(4, 2)) == 1.0  # collapsed particles


def test_svgd_follows_adagrad_with_momentum():
    """Three steps against the recurrence written out: g = phi^2, then g = a g + (1 - a) phi^2;
    x += eps phi / (fudge + sqrt(g))."""
    torch.manual_seed(1)
    x0 = torch.randn(6, 2, dtype=torch.float64)
    start = x0.clone()
    score = lambda z: -z  # noqa: E731
    x, g = x0.clone(), None
    for _ in range(3):
        phi = brute_force_phi(x, score, median_bandwidth(x))
        g = phi**2 if g is None else 0.9 * g + 0.1 * phi**2
        x = x + 0.1 * phi / (1e-6 + g.sqrt())
    out = svgd(score, x0, 3, 0.1)
    torch.testing.assert_close(out, x, rtol=1e-10, atol=1e-12)
    assert torch.equal(x0, start) and not out.requires_grad  # input untouched, no graph


# --------------------------------------------------------------------------- SVGD: batched sets, fast median

@pytest.mark.parametrize("n", [150, 151])
def test_bracketed_median_matches_numpy_and_flags_a_miss(n):
    """The median read inside a bracket (CPU fast path) is np.median of the n^2 entries; a bracket
    that misses the middle pair is reported as such."""
    torch.manual_seed(n)
    x = torch.randn(2, n, 3, dtype=torch.float64)
    d2 = svgd_module._sq_distances(*svgd_module._distance_factors(x))
    expected = [np.median(((x[i, :, None] - x[i, None]) ** 2).sum(-1).numpy()) for i in range(2)]
    exact, bracket, hit = svgd_module._median_sq_distance(d2, None, True)
    assert hit is None and exact.tolist() == pytest.approx(expected, rel=1e-12)
    med2, _, hit = svgd_module._median_sq_distance(d2, bracket, True)
    assert hit.all() and med2.tolist() == pytest.approx(expected, rel=1e-12)
    missing = torch.stack([bracket[:, 0], 0.5 * (bracket[:, 0] + exact)], dim=1)  # upper end below the median
    missing[1] = bracket[1]
    _, _, hit = svgd_module._median_sq_distance(d2, missing, True)
    assert hit.tolist() == [False, True]


def test_svgd_fast_median_and_its_fallback_match_the_exact_median(monkeypatch):
    """The bracketed median (with its rollback when a bracket misses, forced here by big steps)
    gives the same trajectory as kthvalue every step."""
    torch.manual_seed(0)
    x0 = torch.randn(130, 2, dtype=torch.float64)
    score = lambda z: -(z - 1.0) ** 3  # noqa: E731
    misses = []
    original = svgd_module._median_sq_distance

    def spy(d2, bracket, bracketed):
        out = original(d2, bracket, bracketed)
        misses.append(out[2] is not None and not bool(out[2].all()))
        return out
    monkeypatch.setattr(svgd_module, "_median_sq_distance", spy)
    fast = [svgd(score, x0, 60, step, check_every=7) for step in (1e-3, 0.3)]
    assert any(misses) and not all(misses)
    monkeypatch.setattr(svgd_module, "BRACKET_MIN_ENTRIES", 10**9)
    for out, step in zip(fast, (1e-3, 0.3)):
        torch.testing.assert_close(out, svgd(score, x0, 60, step, check_every=7), rtol=1e-9, atol=1e-12)


def test_svgd_half_precision_takes_the_exact_median(monkeypatch):
    """The CPU bracket reads its entries through NumPy, which has no bfloat16: half-precision
    particles (130^2 entries, above BRACKET_MIN_ENTRIES) take kthvalue every step instead."""
    calls = []
    original = svgd_module._median_sq_distance
    monkeypatch.setattr(svgd_module, "_median_sq_distance",
                        lambda d2, bracket, bracketed: calls.append(bracket) or original(d2, bracket, bracketed))
    x0 = torch.randn(130, 2, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.bfloat16, torch.float16):
        out = svgd(lambda z: -z, x0.to(dtype), 20, 1e-2)
        assert out.dtype == dtype and torch.isfinite(out).all()
    assert len(calls) == 40 and all(bracket is None for bracket in calls)


@pytest.mark.parametrize("n", [150, 151])
def test_sorted_median_matches_numpy(n, monkeypatch):
    """The median a GPU reads off a sort (taken here on the CPU) is np.median of the n^2 entries."""
    torch.manual_seed(n)
    x = torch.randn(2, n, 3, dtype=torch.float64)
    d2 = svgd_module._sq_distances(*svgd_module._distance_factors(x))
    expected = [np.median(((x[i, :, None] - x[i, None]) ** 2).sum(-1).numpy()) for i in range(2)]
    monkeypatch.setattr(svgd_module, "_median_by_sort", lambda device: True)
    med2, bracket, hit = svgd_module._median_sq_distance(d2, None, False)
    assert bracket is None and hit is None and med2.tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
@pytest.mark.parametrize("by_sort", [False, True])
@pytest.mark.parametrize("bandwidth", [None, 0.7])
def test_svgd_steps_read_no_value_back_to_the_host(device, by_sort, bandwidth, host_syncs_refused, monkeypatch):
    """On a GPU each read would be a host sync: between its checks (every 50 steps) SVGD leaves
    everything on the device. The GPU's path (no bracket; the median by kthvalue, or read off a sort
    as on a GPU) on a K = 4 prior's score, two particle sets at once; syncs are refused inside the
    steps (on a GPU by torch.cuda's sync debug mode too, the fixture's) and allowed in the checks."""
    monkeypatch.setattr(svgd_module, "_median_by_sort", lambda device: by_sort)
    sorts, steps, real_sort, real_step = [], [], torch.Tensor.sort, svgd_module._svgd_step
    monkeypatch.setattr(torch.Tensor, "sort", lambda *a, **k: sorts.append(1) or real_sort(*a, **k))

    def step(*args):
        steps.append(args[-2:])  # (exact, bracketed)
        with host_syncs_refused(f"SVGD step {len(steps)}"):
            real_step(*args)

    monkeypatch.setattr(svgd_module, "_svgd_step", step)
    x0 = torch.randn(2, 40, 2, generator=torch.Generator().manual_seed(0)).to(device)
    out = svgd(asymmetric_k4_prior(2).to(device).score, x0, 120, 1e-2, bandwidth=bandwidth)
    assert steps == [(True, False)] * 120 and torch.isfinite(out).all() and not torch.equal(out, x0)
    assert len(sorts) == (120 if by_sort and bandwidth is None else 0)


@pytest.mark.parametrize("n", [9, 130])
def test_svgd_moves_batched_sets_like_separate_calls(n):
    torch.manual_seed(n)
    x0 = torch.randn(3, n, 2, dtype=torch.float64) * torch.tensor([[[1.0]], [[2.0]], [[0.5]]], dtype=torch.float64)
    score = lambda z: -(z - 1.0) ** 3  # noqa: E731
    seen = []
    out = svgd(score, x0, 40, 0.05, check_every=15, monitor=lambda step, z: seen.append((step, tuple(z.shape))))
    assert seen == [(15, (3, n, 2)), (30, (3, n, 2)), (40, (3, n, 2))]
    for i in range(3):
        torch.testing.assert_close(out[i], svgd(score, x0[i], 40, 0.05), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(stein_direction(x0, score(x0)),
                               torch.stack([stein_direction(x0[i], score(x0[i])) for i in range(3)]),
                               rtol=1e-12, atol=1e-12)
    assert median_bandwidth(x0).tolist() == pytest.approx([median_bandwidth(x0[i]) for i in range(3)], rel=1e-12)


def test_svgd_batched_escape_names_the_set():
    x0 = torch.randn(2, 10, 1)
    with pytest.raises(SVGDDivergedError, match=r"ran away.*\(particle set 1\)"):
        svgd(lambda z: torch.cat([-z[:10], z[10:]]), x0, 200, 0.5, escape_radius=3.0)


def test_sample_latents_batches_sets_like_separate_svgd_calls():
    """7 samples in sets of 3: [0, 3) and [3, 7) (a lone leftover joins the set before it) per draw;
    the sets of equal size of both draws move in one call, each as if alone."""
    prior = asymmetric_k4_prior(2)
    out = sample_latents(prior, 2, 7, svgd_steps=20, svgd_step_size=0.05, n_particles=3, grid_points=1001,
                         generator=torch.Generator().manual_seed(0), check_every=4)
    assert out.z.shape == out.z_half.shape == out.z_exact.shape == (2, 7, 2) and out.method == "svgd"
    radius = svgd_module.ESCAPE_FACTOR * (1.0 + max(np.abs(marginal_grid(prior, 1001).z).max(), 6.0))
    for draw in range(2):
        for lo, hi in ((0, 3), (3, 7)):
            alone = svgd(prior.score, out.z_start[draw, lo:hi], 20, 0.05, escape_radius=radius, check_every=4)
            torch.testing.assert_close(out.z[draw, lo:hi], alone, rtol=1e-5, atol=1e-6)
            # halfway: the particles at the last check (every 4 steps) at or before step 10 of 20
            halfway = svgd(prior.score, out.z_start[draw, lo:hi], 8, 0.05, escape_radius=radius, check_every=4)
            torch.testing.assert_close(out.z_half[draw, lo:hi], halfway, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- SVGD: known targets

def test_svgd_recovers_a_correlated_gaussian():
    torch.manual_seed(0)
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=torch.float64)
    precision = torch.linalg.inv(cov)
    x = svgd(lambda z: -(z - mu) @ precision, torch.randn(200, 2, dtype=torch.float64), 1000, 0.02)
    torch.testing.assert_close(x.mean(0), mu, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.1, rtol=0.06)  # finite-n SVGD is a bit narrow


def test_svgd_recovers_a_bimodal_mixture():
    """0.5 N(-2, 0.6^2) + 0.5 N(2, 0.6^2) from N(0, 1): both modes filled, KS small. (SVGD does not
    move mass between well-separated modes, so unequal weights would not be recovered.)"""
    torch.manual_seed(0)
    means, s = torch.tensor([-2.0, 2.0], dtype=torch.float64), 0.6

    def score(z):
        weights = torch.softmax(-0.5 * ((z - means) / s) ** 2, dim=1)
        return (weights * (means - z) / s**2).sum(1, keepdim=True)

    x = svgd(score, torch.randn(200, 1, dtype=torch.float64), 1000, 0.02)[:, 0].numpy()
    cdf = lambda v: 0.5 * stats.norm.cdf(v, -2, s) + 0.5 * stats.norm.cdf(v, 2, s)  # noqa: E731
    assert stats.kstest(x, cdf).statistic < 0.06
    assert abs((x > 0).mean() - 0.5) < 0.05
    assert abs(x[x > 0].std() - s) < 0.1


# --------------------------------------------------------------------------- SVGD: refusals

def test_svgd_raises_on_an_unnormalisable_odd_k_prior():
    """log p = -z^2/2 + 0.3 z^3 (K = 3): particles beyond the local minimum z = 1/0.9 run off."""
    prior = odd_prior([[0.0, -0.5, 0.3]])
    assert escape_region(prior.eta[0].detach().double().numpy()) == (-math.inf, pytest.approx(1 / 0.9))
    torch.manual_seed(0)
    with pytest.raises(SVGDDivergedError, match="ran away.*not normalisable.*poly_normalisable"):
        svgd(prior.score, torch.randn(100, 1), 3000, 0.05)


def test_svgd_raises_on_non_finite_values():
    with pytest.raises(ValueError, match="NaN or inf"):
        svgd(lambda z: -z, torch.tensor([[0.0], [math.nan]]), 10, 0.1)
    with pytest.raises(SVGDDivergedError, match="NaN/inf.*step 5"):
        svgd(lambda z: z * math.inf, torch.randn(10, 2), 10, 0.1, check_every=5)
    with pytest.raises(ValueError, match=r"\[n >= 2, d\]"):
        svgd(lambda z: -z, torch.randn(5), 10, 0.1)
    with pytest.raises(ValueError, match="step_size"):
        svgd(lambda z: -z, torch.randn(5, 1), 10, -0.1)


# --------------------------------------------------------------------------- exact sampler

def quad_cdf(eta_j):
    """The normalised CDF of exp(sum_k eta_k z^k) by adaptive quadrature (independent of the grid):
    quad up to the smallest point, then over each gap between consecutive sorted points."""
    density = lambda z: math.exp(sum(e * z ** (k + 1) for k, e in enumerate(eta_j)))  # noqa: E731
    total = integrate.quad(density, -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0]

    def cdf(points):
        points = np.asarray(points, dtype=np.float64)
        order = np.argsort(points)
        ends = points[order]
        pieces = [integrate.quad(density, -np.inf, ends[0], epsabs=0, epsrel=1e-12)[0]]
        pieces += [integrate.quad(density, a, b, epsabs=1e-14)[0] for a, b in zip(ends[:-1], ends[1:])]
        out = np.empty_like(points)
        out[order] = np.cumsum(pieces) / total
        return out
    return cdf


def test_exact_sampler_matches_the_integrated_cdf():
    prior = asymmetric_k4_prior()
    eta = prior.natural_parameters().detach().double().numpy()
    grid = marginal_grid(prior)
    z = sample_prior(prior, 4000, torch.Generator().manual_seed(0))
    assert z.shape == (4000, 3) and z.dtype == torch.float32
    for j in range(3):
        cdf = quad_cdf(eta[j])
        points = np.array([-1.5, -0.3, 0.0, 0.8, 2.0])
        np.testing.assert_allclose(grid.cdf_fn(j)(points), cdf(points), atol=1e-7)
        assert stats.kstest(z[:, j].double().numpy(), cdf).pvalue > 1e-3
    torch.testing.assert_close(sample_prior(prior, 10, torch.Generator().manual_seed(5)),
                               sample_prior(prior, 10, torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("eta, why", [([[0.0, -0.5, 0.0, 0.0, 0.01], [0.0, -0.5, 0.0, 0.0, 0.0]], "odd top degree 5"),
                                      ([[0.0, -0.5, 0.0, 0.0, -1e-4], [0.0, -0.5, 0.0, 0.0, 0.0]], "odd top degree 5"),
                                      ([[0.1, -0.5, 0.0, 0.02]], r"top coefficient eta_4 = 0\.02 > 0")])
def test_exact_sampler_refuses_an_unnormalisable_prior(eta, why):
    with pytest.raises(NotNormalisableError, match=f"dim 0: {why}.*poly_normalisable: true.*SVGD") as err:
        sample_prior(odd_prior(eta), 10)
    assert "dim 1" not in str(err.value)  # dim 1 is a Gaussian factor


def test_gaussian_prior_is_sampled_directly():
    z = sample_prior(GaussianPrior(4), 5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, torch.randn(5, 4, generator=torch.Generator().manual_seed(0)))


def test_marginal_distances_ks_and_exact_w1():
    prior = asymmetric_k4_prior(1)
    grid = marginal_grid(prior, grid_points=2001)
    x = np.random.default_rng(0).normal(0.3, 0.8, size=(300, 1))
    dist = marginal_distances(x, grid)
    assert dist["ks"][0] == pytest.approx(stats.kstest(x[:, 0], grid.cdf_fn(0)).statistic)
    dense = np.linspace(-6, 6, 2_000_001)  # brute force: integral of |F_n - F| on a dense grid
    gap = np.abs(np.searchsorted(np.sort(x[:, 0]), dense, side="right") / 300 - grid.cdf_fn(0)(dense))
    assert dist["w1"][0] == pytest.approx(integrate.trapezoid(gap, dense), abs=1e-5)
    assert wasserstein_to_cdf(np.array([0.0]), np.array([-1.0, 1.0]), np.array([0.0, 1.0])) == pytest.approx(0.5)


# --------------------------------------------------------------------------- sample command

def tiny_checkpoint(tmp_path, prior="polynomial", order=4, normalisable=True, eta=None):
    torch.manual_seed(0)
    model = AutoEncoder(ModelSpec("fisher_ae", "mnist", prior, latent_dim=2, width=4, poly_order=order,
                                  poly_normalisable=normalisable))
    if eta is not None:
        with torch.no_grad():
            model.prior.eta.copy_(torch.tensor(eta))
    return save_model(tmp_path / "model.pt", model, {"model": "fisher_ae_poly", "seed": 0})


def sample_config(tmp_path):
    config = {"seeds": [0], "device": "cpu", "datasets": {"mnist": {"source": "embedded", "latent_dim": 2}},
              "models": {"fisher_ae_poly": {"method": "fisher_ae", "prior": "polynomial"}},
              "training": {"threads": 1},
              "evaluation": {"sampling": {"svgd_steps": 100, "svgd_step_size": 0.05, "n_particles": 30,
                                          "grid_points": 1001},
                             "fid": {"n_samples": 50, "n_draws": 2}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_sample(tmp_path, checkpoint):
    out, report = tmp_path / "z.npz", tmp_path / "report.csv"
    code = main(["sample", "--config", str(sample_config(tmp_path)), "--checkpoint", str(checkpoint), "--seed", "3",
                 "--out", str(out), "--report", str(report)])
    return code, out, report


def test_sample_command_normalisable_prior_compares_svgd_and_exact(tmp_path):
    code, out, report = run_sample(tmp_path, tiny_checkpoint(tmp_path))
    assert code == 0
    with np.load(out) as npz:
        assert npz["z"].shape == (2, 50, 2) and npz["z_exact"].shape == (2, 50, 2)
        assert str(npz["method"]) == "svgd" and float(npz["seconds"]) > 0 and bool(npz["normalisable"])
        assert np.isfinite(npz["z"]).all()
    table = pd.read_csv(report)
    assert list(table.columns) == REPORT_COLUMNS
    assert sorted(table.method) == ["exact", "exact", "svgd", "svgd"] and set(table.n) == {100}
    assert table.ks.between(0, 1).all() and (table.w1 > 0).all() and table.normalisable.all()
    assert table[table.method == "svgd"].escaping_end.eq(0).all()


def test_sample_command_unnormalisable_prior_reports_drift(tmp_path, capsys):
    eta = [[0.0, -0.5, 0.0, 0.0, 0.001], [0.0, -0.5, 0.0, -0.1, 0.0]]  # dim 0 odd K = 5, dim 1 fine
    code, out, report = run_sample(tmp_path, tiny_checkpoint(tmp_path, order=5, normalisable=False, eta=eta))
    assert code == 0
    assert "cannot be normalised in 1 dimension(s) [dim 0: odd top degree 5]" in capsys.readouterr().err
    with np.load(out) as npz:
        assert "z_exact" not in npz and not bool(npz["normalisable"]) and str(npz["method"]) == "svgd"
    table = pd.read_csv(report).set_index("dim")
    assert list(table.method) == ["svgd", "svgd"]
    assert math.isnan(table.loc[0, "ks"]) and "not normalisable" in table.loc[0, "note"]
    assert table.loc[0, "problem"] == "odd top degree 5" and table.loc[0, "escape_region"].startswith("z > ")
    assert table.loc[1, "ks"] >= 0 and table.loc[1, "w1"] > 0  # dim 1's factor still has an exact marginal


def test_sample_command_warns_when_particles_run_away(tmp_path, capsys):
    eta = [[0.0, -0.5, 0.0, 0.0, 0.05], [0.0, -0.5, 0.0, -0.1, 0.0]]  # dim 0 rises without bound past z = 4^(1/3)
    code, _, report = run_sample(tmp_path, tiny_checkpoint(tmp_path, order=5, normalisable=False, eta=eta))
    assert code == 0
    err = capsys.readouterr().err
    assert "SVGD particles ran into the unbounded tail of the prior (dim 0: " in err and "dim 1:" not in err
    assert pd.read_csv(report).set_index("dim").loc[0, "escaping_end"] > 0.01


def test_sample_command_gaussian_prior_is_exact(tmp_path, monkeypatch):
    """N(0, I) draws on the CPU, holding no device slot (its rule asks for no GPU)."""
    from fisherae import devices

    def no_device(config):
        raise AssertionError("the Gaussian prior's draws took a device slot")
    monkeypatch.setattr(devices, "job_device", no_device)
    code, out, report = run_sample(tmp_path, tiny_checkpoint(tmp_path, prior="gaussian"))
    assert code == 0
    with np.load(out) as npz:
        assert str(npz["method"]) == "exact" and npz["z"].shape == (2, 50, 2)
    assert set(pd.read_csv(report).method) == {"exact"}


# --------------------------------------------------------------------------- the samples file

def test_samples_file_round_trip(tmp_path):
    z, z_exact = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 5, 3)
    samples = LatentSamples(z, "svgd", 1.5, z_exact=z_exact, seconds_exact=0.25)
    write_samples(tmp_path / "s.npz", samples, normalisable=True)
    read, method = read_samples(tmp_path / "s.npz", 3)
    assert method == "svgd" and read.dtype == np.float32 and np.array_equal(read, z.numpy().astype(np.float32))
    with np.load(tmp_path / "s.npz") as npz:
        assert sorted(npz.files) == ["method", "normalisable", "seconds", "seconds_exact", "z", "z_exact"]
        assert bool(npz["normalisable"]) and float(npz["seconds_exact"]) == 0.25
    assert list(tmp_path.iterdir()) == [tmp_path / "s.npz"]  # no temporary file left behind
    exact, method = read_samples(tmp_path / "s.npz", 3, exact=True)
    assert method == "exact" and np.array_equal(exact, z_exact.numpy())


def test_the_exact_draws_of_a_samples_file(tmp_path):
    """``exact``: z where the draws are exact (N(0, I)); a clear refusal for SVGD draws without exact ones."""
    z = torch.randn(1, 4, 3)
    write_samples(tmp_path / "gauss.npz", LatentSamples(z, "exact", 0.1), normalisable=True)
    read, method = read_samples(tmp_path / "gauss.npz", 3, exact=True)
    assert method == "exact" and np.array_equal(read, z.numpy())
    write_samples(tmp_path / "k5.npz", LatentSamples(z, "svgd", 0.1), normalisable=False)
    with pytest.raises(SamplesFileError, match=r"k5.npz holds svgd draws and no exact ones: .* without --exact"):
        read_samples(tmp_path / "k5.npz", 3, exact=True)


@pytest.mark.parametrize("arrays, message", [
    (None, "does not exist"),
    ({"z": np.zeros((1, 4, 3), np.float32)}, "lacks z/method"),
    ({"z": np.zeros((4, 3), np.float32), "method": "exact"}, "expected [n_draws, n_samples, 3]"),
    ({"z": np.zeros((1, 4, 2), np.float32), "method": "exact"}, "expected [n_draws, n_samples, 3]"),
    ({"z": np.zeros((1, 0, 3), np.float32), "method": "exact"}, "expected [n_draws, n_samples, 3]"),
    ({"z": np.full((1, 4, 3), np.nan, np.float32), "method": "exact"}, "NaN or inf"),
])
def test_samples_file_reader_refuses_bad_files(tmp_path, arrays, message):
    path = tmp_path / "s.npz"
    if arrays is not None:
        np.savez(path, **arrays)
    with pytest.raises(SamplesFileError) as err:
        read_samples(path, 3)
    assert message in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("spoil, message", [
    (lambda path: path.write_bytes(path.read_bytes()[:-40]), "not a whole NPZ archive"),  # cut short
    (lambda path: np.save(path.with_suffix(""), np.zeros((1, 4, 3))) or path.with_suffix(".npy").replace(path),
     "a single array of shape (1, 4, 3), not an NPZ archive"),
    (lambda path: np.savez(path, z=np.full((1, 4, 3), "a"), method="svgd"), "z holds <U1 values, not floating-point"),
    (lambda path: path.write_bytes(b"\xff\xfe not an archive"), "unreadable or lacks z/method"),
])
def test_samples_file_reader_names_a_spoilt_file(tmp_path, spoil, message):
    """A samples file cut short (an interrupted copy), a lone .npy or a file of strings: one clear
    SamplesFileError naming the file, never numpy's or zipfile's traceback."""
    path = tmp_path / "s.npz"
    write_samples(path, LatentSamples(torch.randn(1, 4, 3), "svgd", 0.1), normalisable=False)
    spoil(path)
    with pytest.raises(SamplesFileError) as err:
        read_samples(path, 3)
    assert message in str(err.value) and str(path) in str(err.value) and "rerun" in str(err.value)


def test_a_samples_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A write that fails half-way (a full disk) leaves the previous samples file as it was."""
    from fisherae import npz

    path, z = tmp_path / "s.npz", torch.randn(1, 4, 3)
    write_samples(path, LatentSamples(z, "svgd", 0.1), normalisable=False)

    def half_written(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(npz.np, "savez", half_written)
    with pytest.raises(OSError, match="No space left"):
        write_samples(path, LatentSamples(torch.randn(1, 4, 3), "svgd", 0.1), normalisable=False)
    assert np.array_equal(read_samples(path, 3)[0], z.numpy()) and [p.name for p in tmp_path.iterdir()] == ["s.npz"]


@pytest.mark.parametrize("name", ["draws.dat", "draws"])
def test_samples_file_keeps_the_name_it_is_given(tmp_path, name):
    """numpy's savez appends .npz to a bare name: the file goes exactly where asked, no temporary file left."""
    z = torch.randn(1, 4, 3)
    assert write_samples(tmp_path / name, LatentSamples(z, "svgd", 0.1), normalisable=False) == tmp_path / name
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert np.array_equal(read_samples(tmp_path / name, 3)[0], z.numpy())


# --------------------------------------------------------------------------- the report (fisherae.sampling_report)

def test_sampling_report_of_gaussian_draws_and_the_runaway_warning():
    from fisherae.sampling_report import runaway_warning, sampling_report

    prior = PolynomialPrior(2, order=4)
    samples = sample_latents(prior, 1, 40, svgd_steps=5, n_particles=40, grid_points=2001,
                             generator=torch.Generator().manual_seed(0))
    drift = sampling.drift_diagnostics(prior, samples)
    table = sampling_report(prior, samples, {1: "odd top degree 5"}, drift, grid_points=2001)
    assert list(table.columns) == REPORT_COLUMNS[3:]
    assert list(table.method) == ["svgd", "svgd", "exact", "exact"] and set(table.n) == {40}
    assert table.normalisable.tolist() == [True, False, True, False]
    assert table.ks.isna().tolist() == [False, True, False, True]
    assert runaway_warning(drift) is None
    runaway = [{**drift[0], "escaping_end": 0.5, "escape_region": "z > 2", "mean_end": 7.0}, drift[1]]
    assert runaway_warning(runaway).startswith("SVGD particles ran into the unbounded tail of the prior "
                                               "(dim 0: 50.0% of particles in z > 2, mean 7)")
