"""Objectives: the Fisher AE loss (eq. 10-11), the VAE ELBO (eq. 2) and the WAE-GAN
objective of Tolstikhin et al. (2018)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fisherae.priors import GaussianPrior

# The Fisher AE loss variants, as (stability at fixed z, decoder score with its graph): the paper's
# eq. 10 ("exact"), the authors' public code (KhalilElkhalil/Fisher-Auto-Encoders, ali_mod/nets.py:
# total-derivative stability and a detached decoder score), and each of those two factors alone.
FISHER_VARIANTS = {
    "exact": (True, True),
    "reparam_total_derivative": (False, False),
    "total_derivative_stability": (False, True),
    "detached_decoder_score": (True, False),
}


@dataclass
class FisherAETerms:
    """Per-sample terms of eq. 11, each [B] and averaged over the L draws; ``loss`` is
    the batch mean of their sum."""

    posterior: torch.Tensor
    reconstruction: torch.Tensor
    stability: torch.Tensor
    loss: torch.Tensor


@dataclass
class VAETerms:
    """Per-sample negative ELBO of eq. 2: reconstruction (-E_q log p(x|z)) and KL, each [B]."""

    reconstruction: torch.Tensor
    kl: torch.Tensor
    loss: torch.Tensor


@dataclass
class WAETerms:
    """Per-sample WAE-GAN encoder/decoder objective: cost c * ||x - f(z)||^2 and lambda * GAN penalty."""

    reconstruction: torch.Tensor
    penalty: torch.Tensor
    loss: torch.Tensor


def draw_eps(mu: torch.Tensor, n_samples: int, eps: torch.Tensor | None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard-normal draws [L, B, d] of z = mu + sigma * eps (given or fresh)."""
    if eps is None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        return torch.randn((n_samples, *mu.shape), dtype=mu.dtype, device=mu.device, generator=generator)
    if eps.dim() != 3 or tuple(eps.shape[1:]) != tuple(mu.shape):
        raise ValueError(f"eps must have shape [L, {mu.shape[0]}, {mu.shape[1]}], got {tuple(eps.shape)}")
    return eps.to(dtype=mu.dtype, device=mu.device)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps for each of the L draws eps [L, B, d], flattened to [L * B, d]."""
    return (mu + torch.exp(0.5 * logvar) * eps).reshape(-1, mu.shape[-1])


def fisher_ae_loss(encoder: nn.Module, decoder: nn.Module, prior: nn.Module, x: torch.Tensor, *,
                   eps: torch.Tensor | None = None, n_samples: int = 1, decoder_var: float = 1.0,
                   variant: str = "exact", generator: torch.Generator | None = None) -> FisherAETerms:
    """Fisher AE loss, eq. 11, with the three per-sample terms of eq. 10.

    posterior      = 1/2 ||grad_z log q(z|x) - prior.score(z) - grad_z log p(x|z)||^2
    reconstruction = 1/2 ||x - f(z)||^2 / decoder_var^2  (Hyvarinen score of N(f(z), v I))
    stability      = 1/2 ||grad_x log q(z|x)||^2, the partial derivative at fixed z.

    ``variant`` (FISHER_VARIANTS) changes two factors of eq. 10 for ablation:
    'total_derivative_stability' takes the stability gradient as the total derivative of
    log q(z(x), x) after reparameterisation (= -grad_x sum_j log sigma_j(x));
    'detached_decoder_score' detaches grad_z log p(x|z) from the graph, so the decoder is not
    trained through the posterior term; 'reparam_total_derivative' does both, as the authors'
    public code does.
    """
    if variant not in FISHER_VARIANTS:
        raise ValueError(f"unknown Fisher AE variant {variant!r}: expected one of {', '.join(FISHER_VARIANTS)}")
    if decoder_var <= 0:
        raise ValueError(f"decoder_var must be > 0, got {decoder_var}")
    fixed_z, score_graph = FISHER_VARIANTS[variant]
    x = x.detach().requires_grad_(True)
    mu, logvar = encoder(x)
    eps = draw_eps(mu, n_samples, eps, generator)
    n_draws, batch, _ = eps.shape
    inv_sigma = torch.exp(-0.5 * logvar)
    z = reparameterise(mu, logvar, eps)

    x_target = x.detach().expand(n_draws, *x.shape).reshape(n_draws * batch, *x.shape[1:])
    residual = (x_target - decoder(z)).flatten(1)
    log_lik = -0.5 * residual.pow(2).sum(1) / decoder_var
    decoder_score, = torch.autograd.grad(log_lik.sum(), z, create_graph=score_graph, retain_graph=True)

    posterior_score = -eps * inv_sigma  # grad_z log q(z|x) at the drawn z
    mismatch = posterior_score - prior.score(z).view_as(eps) - decoder_score.view_as(eps)
    posterior = 0.5 * mismatch.pow(2).sum(-1).mean(0)
    reconstruction = 0.5 * residual.pow(2).sum(1).view(n_draws, batch).mean(0) / decoder_var**2
    stability = torch.stack([
        0.5 * grad_x.flatten(1).pow(2).sum(1)
        for grad_x in _encoder_input_scores(mu, logvar, x, eps, inv_sigma, fixed_z)
    ]).mean(0)
    return FisherAETerms(posterior, reconstruction, stability, (posterior + reconstruction + stability).mean())


def _encoder_input_scores(mu, logvar, x, eps, inv_sigma, fixed_z):
    """grad_x log q(z^(l)|x) for each draw l, with the graph kept for training: the partial
    derivative at fixed z, or (``fixed_z`` False) the total derivative through z(x).

    At fixed z, d log q / d mu = (z - mu)/sigma^2 = eps/sigma and
    d log q / d logvar = ((z - mu)^2/sigma^2 - 1)/2 = (eps^2 - 1)/2, so the gradient is
    one vector-Jacobian product of the encoder per draw. The cotangent eps/sigma keeps
    its dependence on the encoder's parameters, as z = mu + sigma*eps does."""
    for eps_l in eps:
        if fixed_z:
            outputs, cotangents = (mu, logvar), (eps_l * inv_sigma, 0.5 * (eps_l.pow(2) - 1))
        else:
            outputs, cotangents = (logvar,), (torch.full_like(logvar, -0.5),)
        grad_x, = torch.autograd.grad(outputs, x, grad_outputs=cotangents, create_graph=True)
        yield grad_x


def vae_loss(encoder: nn.Module, decoder: nn.Module, prior: nn.Module, x: torch.Tensor, *,
             eps: torch.Tensor | None = None, n_samples: int = 1, decoder_var: float = 1.0,
             generator: torch.Generator | None = None) -> VAETerms:
    """Negative ELBO, eq. 2, with the Gaussian decoder N(f(z), v I) and the analytic KL
    to N(0, I)."""
    if not isinstance(prior, GaussianPrior):
        raise TypeError(
            f"vae_loss needs a GaussianPrior for its analytic KL, got {type(prior).__name__}; "
            "train the VAE with prior: gaussian"
        )
    mu, logvar = encoder(x)
    eps = draw_eps(mu, n_samples, eps, generator)
    n_draws, batch, _ = eps.shape
    z = reparameterise(mu, logvar, eps)
    x_target = x.expand(n_draws, *x.shape).reshape(n_draws * batch, *x.shape[1:])
    squared = (x_target - decoder(z)).flatten(1).pow(2).sum(1).view(n_draws, batch).mean(0)
    n_pixels = x[0].numel()
    reconstruction = 0.5 * squared / decoder_var + 0.5 * n_pixels * math.log(2 * math.pi * decoder_var)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    return VAETerms(reconstruction, kl, (reconstruction + kl).mean())


def wae_encode(encoder: nn.Module, x: torch.Tensor, stochastic: bool = False,
               generator: torch.Generator | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
    """WAE's encoder output: mu(x) (deterministic) or one draw of N(mu, sigma^2) (``eps``
    [1, B, d] given or fresh)."""
    mu, logvar = encoder(x)
    if not stochastic:
        return mu
    return reparameterise(mu, logvar, draw_eps(mu, 1, eps, generator))


def wae_autoencoder_loss(decoder: nn.Module, adversary: nn.Module, x: torch.Tensor,
                         z: torch.Tensor, lam: float, cost_scale: float = 1.0) -> WAETerms:
    """Encoder/decoder step of WAE-GAN: c * ||x - f(z)||^2 + lambda * (-log D(z)), the
    non-saturating GAN penalty that pushes Q_Z towards P_Z. The WAE reference code takes
    c = 0.05 with lambda = 10: up to the factor c, the objective of lambda / c = 200 with c = 1."""
    reconstruction = cost_scale * (x - decoder(z)).flatten(1).pow(2).sum(1)
    logits = adversary(z)
    penalty = lam * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    return WAETerms(reconstruction, penalty, (reconstruction + penalty).mean())


def wae_adversary_loss(adversary: nn.Module, z_prior: torch.Tensor, z_encoded: torch.Tensor) -> torch.Tensor:
    """Adversary step of WAE-GAN: tell prior draws (label 1) from encoded codes (label 0)."""
    real, fake = adversary(z_prior), adversary(z_encoded.detach())
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
