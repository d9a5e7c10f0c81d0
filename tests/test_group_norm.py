"""Group norm's closed-form double backward (``fisherae.group_norm``): exact to second order in
float64 against PyTorch's own layer (and against PyTorch's layer then ReLU, for the layer with its
ReLU folded in), compiled and eager, for every cotangent; each backward asking only for the
gradients its pass uses; the drop-in for ``nn.GroupNorm``; a
Fisher AE loss on the CPU built on it; PyTorch's layer on other devices and after a failed
compile, with the mode saying why; the smoke DAG's nets too small to compile."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

from fisherae import group_norm as gn
from fisherae.config import load_config
from fisherae.image_shapes import IMAGE_SHAPES
from fisherae.losses import fisher_ae_loss
from fisherae.models import AutoEncoder, ModelSpec
from fisherae.training import model_spec

REPO = Path(__file__).resolve().parents[1]
THRESHOLD = gn.MIN_ELEMENTS  # the module's own (the fixture below sets 0)

DTYPE = torch.float64
SHAPES = [(3, 8, 5, 2), (2, 6, 4, 3), (2, 4, 1, 4), (2, 16, 3, 1)]  # (batch, channels, size, groups)


@pytest.fixture(autouse=True)
def _fresh_mode(monkeypatch):
    """Each test runs the closed form on maps of any size, and leaves no failed compile behind."""
    monkeypatch.setattr(gn, "MIN_ELEMENTS", 0)
    monkeypatch.setitem(gn._state, "failed", None)
    monkeypatch.setitem(gn._state, "ran", False)


def _inputs(batch, channels, size, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(batch, channels, size, size, dtype=DTYPE, requires_grad=True)
    weight, bias = (torch.randn(channels, dtype=DTYPE, requires_grad=True) for _ in range(2))
    return x, weight, bias


def _second_derivatives(layer, x, weight, bias, groups):
    """The first derivatives (with graph) of <g_y, layer> and, for random cotangents of all three
    of them, their derivatives in (x, weight, bias, g_y)."""
    y = layer(x, groups, weight, bias, 1e-5)
    grad_y = torch.randn_like(y, requires_grad=True)
    first = torch.autograd.grad(y, (x, weight, bias), grad_y, create_graph=True)
    torch.manual_seed(1)
    cotangents = [torch.randn_like(g) for g in first]
    second = torch.autograd.grad(first, (x, weight, bias, grad_y), cotangents, allow_unused=True)
    return [t.detach() for t in first], [torch.zeros_like(v) if s is None else s for s, v in
                                         zip(second, (x, weight, bias, grad_y))]


def _reference(relu):
    """PyTorch's group norm, then PyTorch's ReLU if ``relu``: what ``gn.group_norm`` must equal."""
    def layer(x, groups, weight, bias, eps):
        y = F.group_norm(x, groups, weight, bias, eps)
        return F.relu(y) if relu else y
    return layer


def _ours(relu):
    return lambda x, groups, weight, bias, eps: gn.group_norm(x, groups, weight, bias, eps, relu)


@pytest.mark.parametrize("relu", [False, True], ids=["norm", "norm_relu"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gradgradcheck(shape, relu):
    *sizes, groups = shape
    inputs = _inputs(*sizes)
    layer = lambda x, w, b: gn.group_norm(x, groups, w, b, 1e-5, relu)  # noqa: E731
    assert gradcheck(layer, inputs) and gradgradcheck(layer, inputs)
    assert gn.double_backward_mode() == gn.COMPILED


@pytest.mark.parametrize("relu", [False, True], ids=["norm", "norm_relu"])
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "eager"])
@pytest.mark.parametrize("shape", SHAPES)
def test_second_derivatives_equal_pytorchs(shape, compiled, relu, monkeypatch):
    """Every term (cotangents of g_x, g_gamma and g_beta at once) equals PyTorch's composite to
    float64 rounding, from the compiled forms and from the eager ones."""
    if not compiled:
        monkeypatch.setattr(gn, "_compiled", lambda name: gn._FORMS[name])
    *sizes, groups = shape
    ours = _second_derivatives(_ours(relu), *_inputs(*sizes), groups)
    reference = _second_derivatives(_reference(relu), *_inputs(*sizes), groups)
    for got, want in zip(ours[0] + ours[1], reference[0] + reference[1]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_one_compiled_graph_serves_every_batch_size():
    """An epoch's last, partial batch and the held-out batches reuse the training batch's graphs:
    the sample dimension is symbolic, and the results are still PyTorch's to float64 rounding."""
    from torch._dynamo.utils import counters

    def check(batch):
        ours = _second_derivatives(_ours(True), *_inputs(batch, 10, 3), 5)
        reference = _second_derivatives(_reference(True), *_inputs(batch, 10, 3), 5)
        for got, want in zip(ours[0] + ours[1], reference[0] + reference[1]):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)

    check(4)
    compiled = counters["stats"]["unique_graphs"]
    for batch in (7, 2):
        check(batch)
    assert counters["stats"]["unique_graphs"] == compiled


def test_one_first_order_graph_a_map():
    """The first-order backward compiles once a map: the inner gradient of eq. 10 (only g_x wanted,
    inputs that require grad) and a plain backward (every gradient wanted) share its graph, so a
    Fisher step compiles two graphs a map, the first order and the closed form."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # whatever tests ran before (each compiled form has a recompile limit)
    shape = (3, 12, 5, 3)  # (batch, channels, size, groups): a map no other test compiles
    before = counters["stats"]["unique_graphs"]
    x, weight, bias = _inputs(*shape[:3])
    y = gn.group_norm(x, shape[3], weight, bias, 1e-5, True)
    grad_x, = torch.autograd.grad(y, x, torch.randn_like(y), create_graph=True)  # g_x alone
    grad_x.square().sum().backward()  # the closed form
    assert counters["stats"]["unique_graphs"] == before + 2
    y = gn.group_norm(x, shape[3], weight, bias, 1e-5, True)
    y.backward(torch.randn_like(y))  # g_x, g_gamma and g_beta
    assert counters["stats"]["unique_graphs"] == before + 2


@pytest.mark.parametrize("relu", [False, True], ids=["norm", "norm_relu"])
def test_a_backward_asks_only_for_the_gradients_its_pass_uses(relu, monkeypatch):
    """The inner gradient of eq. 10 asks the first order for g_x alone, a backward into the
    parameters for g_gamma and g_beta alone (with the ReLU folded in, the first order's one graph
    sums g_gamma and g_beta in its pass over the map anyway, but computes g_x only if asked)."""
    asked, real = [], gn._first_order
    monkeypatch.setattr(gn, "_first_order", lambda *args: asked.append(args[-1]) or real(*args))
    x, weight, bias = _inputs(2, 8, 4)
    y = gn.group_norm(x, 2, weight, bias, 1e-5, relu)
    torch.autograd.grad(y, x, torch.randn_like(y), create_graph=True)
    gn.group_norm(x, 2, weight, bias, 1e-5, relu).square().sum().backward(inputs=[weight, bias])
    assert asked == [(True, False, False), (False, True, True)]
    assert x.grad is None and weight.grad is not None and bias.grad is not None


def test_a_drop_in_for_nn_group_norm():
    torch.manual_seed(0)
    native = nn.GroupNorm(2, 8)
    with torch.no_grad():
        native.weight.normal_(), native.bias.normal_()
    ours, ours_relu = gn.GroupNorm(2, 8), gn.GroupNorm(2, 8, relu=True)
    ours.load_state_dict(native.state_dict())
    ours_relu.load_state_dict(native.state_dict())
    x = torch.randn(3, 8, 4, 4)
    assert torch.equal(ours(x), native(x)) and ours.state_dict().keys() == native.state_dict().keys()
    assert torch.equal(ours_relu(x), F.relu(native(x)))
    with pytest.raises(ValueError, match="affine=True"):
        gn.GroupNorm(2, 8, affine=False)(x)


def _graph_nodes(tensor):
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(next_node for next_node, _ in node.next_functions)
    return {type(node).__name__ for node in seen}


def test_a_fisher_loss_on_the_cpu_differentiates_the_closed_form():
    """The loss's graph holds the closed form's backward, not PyTorch's group-norm backward (whose
    composite is what it replaces) nor a ReLU's (folded into the layer), and the outer backward runs
    the compiled form."""
    torch.manual_seed(0)
    model = AutoEncoder(ModelSpec("fisher_ae", "mnist", "polynomial", width=8))
    loss = fisher_ae_loss(model.encoder, model.decoder, model.prior, torch.rand(4, 1, 28, 28)).loss
    nodes = _graph_nodes(loss)
    assert "_GroupNormBackwardBackward" in nodes and "NativeGroupNormBackward0" not in nodes
    assert "ReluBackward0" not in nodes and "ThresholdBackwardBackward0" not in nodes
    loss.backward()
    assert gn.double_backward_mode() == gn.COMPILED


def test_a_failed_compile_falls_back_to_pytorchs_layer(monkeypatch):
    """The graph already built is differentiated by the eager closed form (still exact); later
    layers are PyTorch's own, and the mode names the error."""
    def broken(name):
        raise RuntimeError("no C++ compiler\nsecond line")

    monkeypatch.setattr(gn, "_compiled", broken)
    *sizes, groups = SHAPES[0]
    ours = _second_derivatives(gn.group_norm, *_inputs(*sizes), groups)
    reference = _second_derivatives(F.group_norm, *_inputs(*sizes), groups)
    for got, want in zip(ours[1], reference[1]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert gn.double_backward_mode() == "PyTorch's composite (torch.compile failed: RuntimeError: no C++ compiler)"
    x, weight, bias = _inputs(*sizes)
    assert type(gn.group_norm(x, groups, weight, bias, 1e-5).grad_fn).__name__ == "NativeGroupNormBackward0"


def test_maps_too_small_to_repay_a_compile_run_pytorchs_layer(monkeypatch):
    monkeypatch.setattr(gn, "MIN_ELEMENTS", 2 * 4 * 3 * 3)
    weight, bias = (torch.ones(4, requires_grad=True) for _ in range(2))
    small, large = torch.randn(1, 4, 3, 3, requires_grad=True), torch.randn(2, 4, 3, 3, requires_grad=True)
    assert type(gn.group_norm(small, 2, weight, bias, 1e-5).grad_fn).__name__ == "NativeGroupNormBackward0"
    assert type(gn.group_norm(large, 2, weight, bias, 1e-5).grad_fn).__name__ == "_GroupNormBackward"
    _second_derivatives(gn.group_norm, small, weight, bias, 2)
    assert gn.double_backward_mode() == f"PyTorch's composite (no map of {2 * 4 * 3 * 3} values or more)"
    _second_derivatives(gn.group_norm, large, weight, bias, 2)
    assert gn.double_backward_mode() == gn.COMPILED


def test_other_devices_run_pytorchs_layer():
    x = torch.randn(2, 4, 3, 3, device="meta", requires_grad=True)
    weight, bias = (torch.ones(4, device="meta", requires_grad=True) for _ in range(2))
    assert type(gn.group_norm(x, 2, weight, bias, 1e-5).grad_fn).__name__ == "NativeGroupNormBackward0"


def test_the_smoke_dags_nets_compile_nothing():
    """The README's first command (config/smoke.yaml) needs no C++ compiler: none of its group
    norms sees a map of MIN_ELEMENTS values at its training batch size."""
    config = load_config(REPO / "config" / "smoke.yaml")
    batch, sizes = config["training"]["batch_size"], []
    for dataset in config["datasets"]:
        model = AutoEncoder(model_spec(config, dataset, next(iter(config["models"]))))
        for layer in model.modules():
            if isinstance(layer, gn.GroupNorm):
                layer.register_forward_hook(lambda _, inputs, __: sizes.append(inputs[0].numel()))
        with torch.no_grad():
            model.decoder(model.encode_mean(torch.zeros(batch, *IMAGE_SHAPES[dataset])))
    assert sizes and max(sizes) < THRESHOLD, max(sizes)
