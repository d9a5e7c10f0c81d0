"""The linear layers on ``fisherae.linear.product``: exact to second order in float64, nn.Linear's
drop-in, no weight gradient in an input-gradient pass, and each narrow CPU product computed as
the transpose of its transpose."""

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.profiler import ProfilerActivity, profile

from fisherae import linear
from fisherae.linear import Linear, product

DTYPE = torch.float64
SHAPES = [(5, 8), (8, 5), (3, 40), (40, 3), (1, 1)]  # (in, out): narrow and wide results, both orientations


def _layer(n_in, n_out, bias=True, seed=0):
    torch.manual_seed(seed)
    return Linear(n_in, n_out, bias=bias).to(DTYPE)


@pytest.mark.parametrize("n_in, n_out", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_first_and_second_derivatives_are_exact(n_in, n_out, bias):
    layer = _layer(n_in, n_out, bias)
    x = torch.randn(6, n_in, dtype=DTYPE, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())

    def call(x, *params):
        return torch.func.functional_call(layer, dict(zip(dict(layer.named_parameters()), params)), (x,))

    assert gradcheck(call, (x, *params))
    assert gradgradcheck(call, (x, *params))


@pytest.mark.parametrize("n_in, n_out", SHAPES)
def test_a_drop_in_for_nn_linear(n_in, n_out):
    layer = _layer(n_in, n_out)
    native = nn.Linear(n_in, n_out).to(DTYPE)
    native.load_state_dict(layer.state_dict())
    x = torch.randn(2, 7, n_in, dtype=DTYPE)  # leading dimensions as nn.Linear takes them
    torch.testing.assert_close(layer(x), native(x), rtol=1e-13, atol=1e-13)
    x.requires_grad_()
    ours = torch.autograd.grad(layer(x).square().sum(), (x, *layer.parameters()))
    theirs = torch.autograd.grad(native(x).square().sum(), (x, *native.parameters()))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_an_input_gradient_computes_no_weight_gradient(monkeypatch):
    """Eq. 10's inner gradients want the input's gradient only: no product for the weight's."""
    layer = _layer(8, 30)
    products = []
    monkeypatch.setattr(linear, "_oriented", lambda a, b: products.append((a.shape, b.shape)) or torch.mm(a, b))
    z = torch.randn(4, 8, dtype=DTYPE, requires_grad=True)
    y = layer(z)
    products.clear()
    torch.autograd.grad(y.square().sum(), z)
    assert products == [((4, 30), (30, 8))], products  # g W: no z^T g


@pytest.mark.parametrize("m, n, transposed", [(128, 8, True), (6272, 8, True), (8, 6272, False), (128, 6272, False),
                                              (128, 16, False), (16, 16, False), (100, 15, True)])
def test_which_cpu_products_are_computed_transposed(m, n, transposed):
    a, b = torch.randn(m, 64), torch.randn(64, n)
    assert linear.transposes(m, n, a.device) == transposed
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        out = product(a, b)
    shapes = [event.input_shapes for event in prof.events() if event.name == "aten::mm"]
    assert shapes == ([[[n, 64], [64, m]]] if transposed else [[[m, 64], [64, n]]])
    assert out.is_contiguous() and out.shape == (m, n)
    torch.testing.assert_close(out, a @ b)


def test_other_devices_compute_the_product_as_it_is():
    assert not linear.transposes(128, 8, torch.device("cuda"))
