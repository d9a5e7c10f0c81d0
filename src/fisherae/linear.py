"""Linear layers whose matrix products run in the orientation the CPU's BLAS runs fast.

A product whose result is narrow, [M, N] with few columns and more rows than columns, ran 3 to 5
times slower in MKL's sgemm (torch's CPU matmul) on this project's AMD box than the same product
transposed, (B^T A^T)^T. nn.Linear's backward has two such products in the MNIST decoder's first
layer (latent 8 to 6 272 values at width 16), each twice in a Fisher step: its input gradient,
[128, 6 272] x [6 272, 8] (0.62 against 0.18 ms), and its weight gradient, [6 272, 128] x [128, 8]
(0.65 ms). Here a linear layer is the product x W^T of an autograd Function whose backward is the
same Function: the gradient of W^T is x^T g, [8, 128] x [128, 6 272] (0.19 ms), and every product of
every order with a narrow result is computed transposed on the CPU (elsewhere, as it is)
(``python benchmarks/bench_products.py`` prints each product of the nets' linear layers both ways;
BENCHMARKS.md). The same sums; the BLAS may round them differently.
"""

from __future__ import annotations

import torch
from torch import nn

from fisherae.pruned_backward import entered, runs_plainly, wanted

NARROW = 16  # a CPU product [M, N] with N < NARROW and M > N is computed as (B^T A^T)^T (bench_products.py)


def product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b (both 2-D), differentiable to any order, each product in the CPU's faster orientation."""
    if runs_plainly((a, b)):
        return _oriented(a, b)
    return _Product.apply(*entered((a, b)))


def transposes(m: int, n: int, device: torch.device) -> bool:
    """Whether the product with an [m, n] result is computed as the transpose of its transpose."""
    return device.type == "cpu" and m > n and n < NARROW


def _oriented(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if transposes(a.shape[0], b.shape[1], a.device):
        return torch.mm(b.t(), a.t()).t().contiguous()
    return torch.mm(a, b)


class _Product(torch.autograd.Function):
    """a @ b; backward: g b^T and a^T g, each by this Function and only if the running pass uses it."""

    @staticmethod
    def forward(a, b):
        return _oriented(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        want_a, want_b = wanted(ctx)
        return product(grad, b.t()) if want_a else None, product(a.t(), grad) if want_b else None


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) on ``product``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = product(x.reshape(-1, self.in_features), self.weight.t()).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias
