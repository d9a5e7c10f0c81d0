"""The Fisher AE loss (eq. 10-11) against a brute-force, per-sample float64 reference built
with torch.func, and the known traps: partial x-derivative at fixed z, the decoder score's
graph, batch coupling."""

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

from fisherae import group_norm
from fisherae.losses import (FISHER_VARIANTS, fisher_ae_loss, vae_loss, wae_adversary_loss, wae_autoencoder_loss,
                             wae_encode)
from fisherae.models import ARCHITECTURES, ConvDecoder, ConvEncoder, LatentAdversary
from fisherae.priors import GaussianPrior, PolynomialPrior

DTYPE = torch.float64


class MLPEncoder(nn.Module):
    """Smooth encoder so every second derivative is non-trivial."""

    def __init__(self, n_in=6, d=3):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n_in, 7), nn.Tanh(), nn.Linear(7, 2 * d))

    def forward(self, x):
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, 0.5 * torch.tanh(logvar)


class MLPDecoder(nn.Module):
    def __init__(self, d=3, shape=(2, 3)):
        super().__init__()
        self.shape = shape
        self.net = nn.Sequential(nn.Linear(d, 5), nn.Softplus(), nn.Linear(5, math.prod(shape)), nn.Sigmoid())

    def forward(self, z):
        return self.net(z).view(-1, *self.shape)


def _seeded(module, seed):
    torch.manual_seed(seed)
    module = module.to(DTYPE)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    return module


def _mlp_case(prior_kind, seed=0, batch=4, n_draws=1):
    enc, dec = _seeded(MLPEncoder(), seed), _seeded(MLPDecoder(), seed + 1)
    prior = {
        "gaussian": GaussianPrior(3),
        "poly5": PolynomialPrior(3, order=5),
        "poly4n": PolynomialPrior(3, order=4, normalisable=True),
    }[prior_kind]
    prior = _seeded(prior, seed + 2) if prior_kind != "gaussian" else prior.to(DTYPE)
    if prior_kind != "gaussian":
        with torch.no_grad():  # keep z^k terms moderate but non-zero
            for p in prior.parameters():
                p.mul_(0.3)
    gen = torch.Generator().manual_seed(seed + 3)
    x = torch.rand(batch, 2, 3, generator=gen, dtype=DTYPE)
    eps = torch.randn(n_draws, batch, 3, generator=gen, dtype=DTYPE)
    return enc, dec, prior, x, eps


def _conv_case(seed=0, batch=3, n_draws=1):
    arch = ARCHITECTURES["mnist"]
    torch.manual_seed(seed)
    enc = ConvEncoder(arch, latent_dim=2, width=2).to(DTYPE)
    dec = ConvDecoder(arch, latent_dim=2, width=2).to(DTYPE)
    prior = _seeded(PolynomialPrior(2, order=5), seed)
    with torch.no_grad():
        prior.eta.mul_(0.2)
    gen = torch.Generator().manual_seed(seed + 3)
    x = torch.rand(batch, 1, 28, 28, generator=gen, dtype=DTYPE)
    eps = torch.randn(n_draws, batch, 2, generator=gen, dtype=DTYPE)
    return enc, dec, prior, x, eps


def _named_params(enc, dec, prior):
    return {f"{name}.{k}": v for name, m in (("encoder", enc), ("decoder", dec), ("prior", prior))
            for k, v in m.named_parameters()}


def reference_terms(enc, dec, prior, params, x, eps, decoder_var=1.0, total_derivative=False):
    """Brute force: one sample and one draw at a time; every score by torch.func.grad of a
    log-density written out from its definition. Returns ([B] terms..., batch loss)."""
    def part(prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    enc_p, dec_p, prior_p = part("encoder."), part("decoder."), part("prior.")

    def encode(xi):
        mu, logvar = functional_call(enc, enc_p, (xi[None],))
        return mu[0], logvar[0]

    def log_q(xi, z):  # log N(z; mu(x), diag sigma^2(x)), z an independent argument
        mu, logvar = encode(xi)
        return (-0.5 * (z - mu) ** 2 * torch.exp(-logvar) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum()

    def log_q_reparameterised(xi, eps_l):  # log q(z(x), x): the wrong quantity for term 3
        mu, logvar = encode(xi)
        return log_q(xi, mu + torch.exp(0.5 * logvar) * eps_l)

    def log_lik(xi, z):
        f = functional_call(dec, dec_p, (z[None],))[0]
        return -0.5 * ((xi - f) ** 2).sum() / decoder_var

    def log_prior(z):
        return functional_call(prior, prior_p, (z[None],))[0]

    posts, recons, stabs = [], [], []
    for i in range(x.shape[0]):
        post_i, recon_i, stab_i = 0.0, 0.0, 0.0
        for eps_l in eps[:, i]:
            mu, logvar = encode(x[i])
            z = mu + torch.exp(0.5 * logvar) * eps_l
            mismatch = grad(log_q, argnums=1)(x[i], z) - grad(log_prior)(z) - grad(log_lik, argnums=1)(x[i], z)
            post_i = post_i + 0.5 * (mismatch ** 2).sum()
            f = functional_call(dec, dec_p, (z[None],))[0]
            recon_i = recon_i + 0.5 * ((x[i] - f) ** 2).sum() / decoder_var**2
            g_x = (grad(log_q_reparameterised)(x[i], eps_l) if total_derivative
                   else grad(log_q, argnums=0)(x[i], z))
            stab_i = stab_i + 0.5 * (g_x ** 2).sum()
        n = eps.shape[0]
        posts.append(post_i / n), recons.append(recon_i / n), stabs.append(stab_i / n)
    posts, recons, stabs = torch.stack(posts), torch.stack(recons), torch.stack(stabs)
    return posts, recons, stabs, (posts + recons + stabs).mean()


def _check_against_reference(enc, dec, prior, x, eps, decoder_var=1.0):
    params = _named_params(enc, dec, prior)
    terms = fisher_ae_loss(enc, dec, prior, x, eps=eps, decoder_var=decoder_var)
    ours = torch.autograd.grad(terms.loss, list(params.values()))
    ref_post, ref_recon, ref_stab, ref_loss = reference_terms(enc, dec, prior, params, x, eps, decoder_var)
    tight = dict(rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(terms.posterior, ref_post, **tight)
    torch.testing.assert_close(terms.reconstruction, ref_recon, **tight)
    torch.testing.assert_close(terms.stability, ref_stab, **tight)
    torch.testing.assert_close(terms.loss, ref_loss, **tight)

    def ref_loss_of(p):
        return reference_terms(enc, dec, prior, p, x, eps, decoder_var)[3]

    ref_grads = grad(ref_loss_of)({k: v.detach() for k, v in params.items()})
    for name, g in zip(params, ours):
        scale = ref_grads[name].abs().max().clamp_min(1e-3)
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-8, atol=1e-10 * scale, msg=name)
        assert g.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("prior_kind", ["gaussian", "poly5", "poly4n"])
@pytest.mark.parametrize("n_draws", [1, 3])
def test_fisher_loss_value_and_gradients_match_reference_mlp(prior_kind, n_draws):
    _check_against_reference(*_mlp_case(prior_kind, n_draws=n_draws))


@pytest.mark.parametrize("closed_form", [False, True], ids=["pytorch_group_norm", "closed_form_group_norm"])
@pytest.mark.parametrize("n_draws", [1, 3])
def test_fisher_loss_matches_reference_on_paper_convnets(n_draws, closed_form, monkeypatch):
    """Also with every group norm on the compiled closed-form double backward (``fisherae.group_norm``
    keeps PyTorch's layer for maps as small as these)."""
    if closed_form:
        monkeypatch.setattr(group_norm, "MIN_ELEMENTS", 0)
        monkeypatch.setitem(group_norm._state, "ran", False)
    _check_against_reference(*_conv_case(n_draws=n_draws))
    assert not closed_form or group_norm.double_backward_mode() == group_norm.COMPILED


def test_decoder_variance_scales_terms_as_defined():
    _check_against_reference(*_mlp_case("poly5", seed=4, n_draws=2), decoder_var=0.3)


def test_stability_is_the_partial_derivative_at_fixed_z_not_the_total_derivative():
    enc, dec, prior, x, eps = _mlp_case("gaussian", seed=5)
    params = _named_params(enc, dec, prior)
    _, _, partial, _ = reference_terms(enc, dec, prior, params, x, eps)
    _, _, total, _ = reference_terms(enc, dec, prior, params, x, eps, total_derivative=True)
    ours = fisher_ae_loss(enc, dec, prior, x, eps=eps).stability
    torch.testing.assert_close(ours, partial, rtol=1e-10, atol=1e-12)
    assert (ours - total).abs().min() > 1e-3, "exact and reparameterised stability terms coincide"


@pytest.mark.parametrize("variant", ["reparam_total_derivative", "total_derivative_stability", "detached_decoder_score"])
def test_each_variant_computes_its_stability_term(variant):
    """The total-derivative variants compute grad_x log q(z(x), x) = -grad_x sum log sigma(x); the
    others the partial derivative at fixed z."""
    enc, dec, prior, x, eps = _mlp_case("gaussian", seed=6, n_draws=2)
    params = _named_params(enc, dec, prior)
    fixed_z, _ = FISHER_VARIANTS[variant]
    _, _, expected, _ = reference_terms(enc, dec, prior, params, x, eps, total_derivative=not fixed_z)
    ours = fisher_ae_loss(enc, dec, prior, x, eps=eps, variant=variant)
    torch.testing.assert_close(ours.stability, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", list(FISHER_VARIANTS))
def test_the_decoder_is_trained_through_the_posterior_term_unless_its_score_is_detached(variant):
    enc, dec, prior, x, eps = _mlp_case("poly5", seed=7)
    posterior = fisher_ae_loss(enc, dec, prior, x, eps=eps, variant=variant).posterior.sum()
    grads = torch.autograd.grad(posterior, list(dec.parameters()), allow_unused=True)
    reached = sum(float(g.abs().sum()) for g in grads if g is not None)
    _, score_graph = FISHER_VARIANTS[variant]
    assert reached > 1e-6 if score_graph else reached == 0


def test_the_variants_are_the_2x2_of_the_paper_and_the_authors_code():
    assert FISHER_VARIANTS["exact"] == (True, True) and FISHER_VARIANTS["reparam_total_derivative"] == (False, False)
    assert sorted(FISHER_VARIANTS.values()) == [(a, b) for a in (False, True) for b in (False, True)]


def _per_sample_terms_and_grads(enc, dec, prior, x, eps, i):
    terms = fisher_ae_loss(enc, dec, prior, x, eps=eps)
    own = terms.posterior[i] + terms.reconstruction[i] + terms.stability[i]
    params = [p for m in (enc, dec, prior) for p in m.parameters()]
    return torch.stack([terms.posterior[i], terms.reconstruction[i], terms.stability[i]]), \
        torch.autograd.grad(own, params)


def test_paper_convnets_do_not_couple_samples():
    """Sample 0's loss terms and their parameter gradients ignore a change to sample 1."""
    enc, dec, prior, x, eps = _conv_case(seed=8, batch=3, n_draws=2)
    enc.train(), dec.train()
    before, grads_before = _per_sample_terms_and_grads(enc, dec, prior, x, eps, 0)
    x2 = x.clone()
    x2[1] = torch.rand_like(x2[1])
    x2[2] = 1 - x2[2]
    after, grads_after = _per_sample_terms_and_grads(enc, dec, prior, x2, eps, 0)
    torch.testing.assert_close(before, after, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_before, grads_after):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_coupling_check_catches_batchnorm():
    """The same check fails for a BatchNorm encoder in training mode."""
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 6)).to(DTYPE)

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = enc

        def forward(self, x):
            return self.body(x).chunk(2, dim=1)

    _, dec, prior, x, eps = _mlp_case("gaussian", seed=9)
    before, _ = _per_sample_terms_and_grads(Wrapped().train(), dec, prior, x, eps, 0)
    x2 = x.clone()
    x2[1] = 1 - x2[1]
    after, _ = _per_sample_terms_and_grads(Wrapped().train(), dec, prior, x2, eps, 0)
    assert (before - after).abs().max() > 1e-6


def test_fresh_draws_are_reproducible_with_a_generator():
    enc, dec, prior, x, _ = _mlp_case("gaussian")
    a = fisher_ae_loss(enc, dec, prior, x, n_samples=2, generator=torch.Generator().manual_seed(1)).loss
    b = fisher_ae_loss(enc, dec, prior, x, n_samples=2, generator=torch.Generator().manual_seed(1)).loss
    assert a == b


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=torch.zeros(4, 3, dtype=DTYPE)), "shape"),
    (dict(eps=torch.zeros(1, 5, 3, dtype=DTYPE)), "shape"),
    (dict(n_samples=0), "n_samples"),
    (dict(decoder_var=0.0), "decoder_var"),
    (dict(variant="total"), "variant"),
])
def test_bad_arguments_are_refused(kwargs, match):
    enc, dec, prior, x, _ = _mlp_case("gaussian")
    with pytest.raises(ValueError, match=match):
        fisher_ae_loss(enc, dec, prior, x, **kwargs)


def test_vae_loss_is_the_negative_elbo():
    enc, dec, prior, x, eps = _mlp_case("gaussian", n_draws=2)
    terms = vae_loss(enc, dec, prior, x, eps=eps)
    mu, logvar = enc(x)
    sigma = torch.exp(0.5 * logvar)
    # KL(N(mu, sigma^2) || N(0, 1)) by quadrature-free Monte Carlo is noisy; use the closed form
    # from its definition E_q[log q - log p] with log densities written out per dimension.
    kl = (-torch.log(sigma) + 0.5 * (sigma**2 + mu**2) - 0.5).sum(1)
    torch.testing.assert_close(terms.kl, kl)
    nll = []
    for draw in range(2):
        f = dec(mu + sigma * eps[draw])
        nll.append(-torch.distributions.Normal(f, 1.0).log_prob(x).flatten(1).sum(1))
    torch.testing.assert_close(terms.reconstruction, torch.stack(nll).mean(0))
    torch.testing.assert_close(terms.loss, (terms.kl + terms.reconstruction).mean())


def test_vae_refuses_a_prior_without_analytic_kl():
    enc, dec, _, x, _ = _mlp_case("gaussian")
    with pytest.raises(TypeError, match="GaussianPrior"):
        vae_loss(enc, dec, PolynomialPrior(3).to(DTYPE), x)


def test_wae_gan_objectives():
    enc, dec, _, x, _ = _mlp_case("gaussian")
    adversary = LatentAdversary(3, hidden=16).to(DTYPE)
    assert sum(isinstance(m, nn.Linear) for m in adversary.modules()) == 4
    z = wae_encode(enc, x)
    torch.testing.assert_close(z, enc(x)[0])
    terms = wae_autoencoder_loss(dec, adversary, x, z, lam=2.0)
    expected_pen = 2.0 * -torch.nn.functional.logsigmoid(adversary(z))
    torch.testing.assert_close(terms.penalty, expected_pen)
    torch.testing.assert_close(terms.reconstruction, (x - dec(z)).flatten(1).pow(2).sum(1))
    z_prior = torch.randn_like(z)
    adv = wae_adversary_loss(adversary, z_prior, z)
    expected_adv = (-torch.nn.functional.logsigmoid(adversary(z_prior)).mean()
                    - torch.nn.functional.logsigmoid(-adversary(z)).mean())
    torch.testing.assert_close(adv, expected_adv)
    # the adversary step does not push gradients into the encoder
    assert torch.autograd.grad(adv, list(enc.parameters()), allow_unused=True)[0] is None
    stochastic = wae_encode(enc, x, stochastic=True, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(stochastic, z)
