"""Priors: scores against autograd of the unnormalised log-density, normalisability."""

import pytest
import torch

from fisherae.priors import GaussianPrior, PolynomialPrior, build_prior


def _randomise(prior: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in prior.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _autograd_score(prior, z):
    z = z.detach().requires_grad_(True)
    return torch.autograd.grad(prior.log_density(z).sum(), z)[0]


@pytest.mark.parametrize("prior", [
    GaussianPrior(3),
    PolynomialPrior(3, order=5),
    PolynomialPrior(3, order=4, normalisable=True),
    PolynomialPrior(3, order=1),
], ids=["gaussian", "poly-K5", "poly-K4-normalisable", "poly-K1"])
def test_score_matches_autograd_of_log_density(prior):
    prior = prior.double()
    _randomise(prior)
    z = torch.randn(4, 2, 3, dtype=torch.float64)  # any leading shape
    torch.testing.assert_close(prior.score(z), _autograd_score(prior, z), rtol=1e-12, atol=1e-12)


def test_polynomial_score_is_eq13_derivative():
    prior = PolynomialPrior(2, order=3).double()
    with torch.no_grad():
        prior.eta.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, -0.5, 0.0]], dtype=torch.float64))
    z = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    # d/dz sum_k eta_k z^k = eta_1 + 2 eta_2 z + 3 eta_3 z^2
    expected = torch.tensor([[1.0 - 8.0 + 6.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(prior.score(z), expected)


@pytest.mark.parametrize("normalisable", [False, True])
def test_score_is_differentiable_in_eta(normalisable):
    prior = PolynomialPrior(3, order=4, normalisable=normalisable).double()
    _randomise(prior, 1)
    z = torch.randn(5, 3, dtype=torch.float64)
    params = list(prior.parameters())
    grads = torch.autograd.grad(prior.score(z).pow(2).sum(), params)
    assert all(g.abs().sum() > 0 for g in grads)

    def via_natural(eta):
        k = torch.arange(1, 5, dtype=torch.float64)
        return ((z.unsqueeze(-1) ** (k - 1)) * k * eta).sum(-1).pow(2).sum()

    eta = prior.natural_parameters()
    expected = torch.autograd.grad(via_natural(eta), params)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e)


def test_paper_form_has_eta_parameter_of_shape_dim_by_order():
    prior = PolynomialPrior(8, order=5)
    assert isinstance(prior.eta, torch.nn.Parameter)
    assert prior.eta.shape == (8, 5)
    assert [name for name, _ in prior.named_parameters()] == ["eta"]
    # starts at N(0, I): eta_j2 = -1/2, everything else 0
    torch.testing.assert_close(prior.score(torch.ones(1, 8)), -torch.ones(1, 8))


def test_odd_order_is_not_normalisable_once_top_coefficient_moves():
    prior = PolynomialPrior(3, order=5)
    assert prior.is_normalisable()  # initialised at the standard normal
    with torch.no_grad():
        prior.eta[1, 4] = 1e-3
    assert not prior.is_normalisable()
    assert prior.normalisable_dims().tolist() == [True, False, True]
    with torch.no_grad():  # a negative odd top coefficient too: the density still rises without bound at -inf
        prior.eta[1, 4] = -1e-3
    assert not prior.is_normalisable()
    assert prior.normalisable_dims().tolist() == [True, False, True]


def test_even_order_positive_top_is_not_normalisable():
    prior = PolynomialPrior(2, order=4)
    with torch.no_grad():
        prior.eta[0, 3] = 0.2
        prior.eta[1, 3] = -0.2
    assert prior.normalisable_dims().tolist() == [False, True]


def test_normalisable_form_stays_normalisable_for_any_parameters():
    prior = PolynomialPrior(4, order=4, normalisable=True)
    for seed in range(5):
        _randomise(prior, seed)
        assert prior.is_normalisable()
        assert (prior.natural_parameters()[:, -1] < 0).all()


def test_normalisable_form_refuses_odd_order():
    with pytest.raises(ValueError, match="even order"):
        PolynomialPrior(3, order=5, normalisable=True)


@pytest.mark.parametrize("bad", [dict(dim=0), dict(dim=2, order=0)])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        PolynomialPrior(**bad)


def test_wrong_latent_size_is_refused():
    with pytest.raises(ValueError, match="dim 3"):
        GaussianPrior(3).score(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="dim 3"):
        PolynomialPrior(3).score(torch.zeros(2, 4))


def test_build_prior_by_name():
    assert isinstance(build_prior("gaussian", 2), GaussianPrior)
    assert isinstance(build_prior("polynomial", 2, order=4, normalisable=True), PolynomialPrior)
    with pytest.raises(ValueError, match="unknown prior"):
        build_prior("laplace", 2)
