"""The fallback-free convolutions: exact to second order in float64 (gradgradcheck), the
native modules' drop-in (outputs, state dicts), no weight gradient in an input-gradient pass,
and a profiled Fisher step of the paper's nets in which every convolution is a layer's own or
its adjoint, on a backend kernel (the native double backward's dilated terms, which cuDNN
refuses and runs in ``slow_conv_dilated2d``, would fail it: checked on the native modules)."""

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call, grad
from torch.profiler import ProfilerActivity, profile

from fisherae import convolutions
from fisherae.convolutions import Conv2d, ConvTranspose2d, Geometry
from fisherae.losses import fisher_ae_loss
from fisherae.models import AutoEncoder, ModelSpec

DTYPE = torch.float64
LAYERS = {  # the geometries of the paper's nets (stride-2 convs, 'same' conv, transposed with and without
    # output padding) and a grouped one
    "conv k4 s2": lambda: Conv2d(3, 4, 4, stride=2),
    "conv k5 same": lambda: Conv2d(3, 2, 5, padding="same"),
    "conv k3 s2 p1 groups": lambda: Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
    "transposed k5 s2 p2 op1": lambda: ConvTranspose2d(4, 16, 5, stride=2, padding=2, output_padding=1),
    "transposed k4 s2 p1": lambda: ConvTranspose2d(4, 16, 4, stride=2, padding=1),
    # the CPU's other forms (Geometry.cpu_form): one output channel (depthwise and summed), stride-1
    # transposed (the plain convolution with the kernel flipped), also dilated with uneven padding
    "conv k5 same to one channel": lambda: Conv2d(3, 1, 5, padding="same"),
    "conv k3 s2 d2 to one channel": lambda: Conv2d(3, 1, 3, stride=2, dilation=2, padding=(1, 0)),
    "transposed k5 s1 p2 from one channel": lambda: ConvTranspose2d(1, 3, 5, padding=2),
    "transposed k3 s1 d2": lambda: ConvTranspose2d(2, 3, 3, padding=(1, 0), dilation=(2, 1)),
    # stride 1 with one channel on one side: the weight gradient by unfolding (_one_channel_weight_gradient)
    "conv k3 d2 to one channel": lambda: Conv2d(3, 1, 3, dilation=(2, 1), padding=(1, 0)),
    "transposed k3 d2 from one channel": lambda: ConvTranspose2d(1, 3, 3, padding=(1, 0), dilation=(2, 1)),
    # strided transposed to fewer than 16 channels, or to fewer than 64 where the stride divides the
    # kernel (above: k4 s2 to 16): one plain convolution per output phase
    "transposed k5 s2 p2 op1 to 3 channels": lambda: ConvTranspose2d(4, 3, 5, stride=2, padding=2, output_padding=1),
    "transposed k4 s2 p1 to 3 channels": lambda: ConvTranspose2d(4, 3, 4, stride=2, padding=1),
    "transposed k4 s(3, 2) p0 op(2, 1) to 1 channel": lambda: ConvTranspose2d(2, 1, 4, stride=(3, 2), output_padding=(2, 1)),
}
FORMS = {"conv k5 same to one channel": "depthwise", "conv k3 s2 d2 to one channel": "depthwise",
         "transposed k5 s1 p2 from one channel": "flipped", "transposed k3 s1 d2": "flipped",
         "conv k3 d2 to one channel": "depthwise", "transposed k3 d2 from one channel": "flipped",
         "transposed k4 s2 p1": "phases", "transposed k5 s2 p2 op1 to 3 channels": "phases",
         "transposed k4 s2 p1 to 3 channels": "phases", "transposed k4 s(3, 2) p0 op(2, 1) to 1 channel": "phases"}
NATIVE = {Conv2d: nn.Conv2d, ConvTranspose2d: nn.ConvTranspose2d}


def _layer(name, seed=0):
    torch.manual_seed(seed)
    return LAYERS[name]().to(DTYPE)


def _as_function(layer):
    """(x, weight, bias) -> layer output, with the layer's own geometry."""
    geometry = layer.geometry
    return lambda x, w, b: convolutions.convolution(x, w, b, geometry)


@pytest.mark.parametrize("name", LAYERS)
def test_first_and_second_derivatives_are_exact(name):
    layer = _layer(name)
    assert layer.geometry.cpu_form(layer.in_channels, layer.weight.shape)[0] == FORMS.get(name, "as is")
    x = torch.randn(2, layer.in_channels, 7, 7, dtype=DTYPE, requires_grad=True)
    w, b = (p.detach().clone().requires_grad_() for p in (layer.weight, layer.bias))
    assert gradcheck(_as_function(layer), (x, w, b))
    assert gradgradcheck(_as_function(layer), (x, w, b))


@pytest.mark.parametrize("name", LAYERS)
def test_a_drop_in_for_the_native_module(name):
    layer = _layer(name)
    native = NATIVE[type(layer)]
    x = torch.randn(3, layer.in_channels, 8, 8, dtype=DTYPE)
    torch.testing.assert_close(layer(x), native.forward(layer, x), rtol=1e-13, atol=1e-13)  # the CPU's forms sum
    # in another order
    twin = _layer(name, seed=1)
    twin.load_state_dict(layer.state_dict())
    assert list(layer.state_dict()) == ["weight", "bias"] and torch.equal(twin(x), layer(x))


@pytest.mark.parametrize("name", LAYERS)
def test_an_input_gradient_computes_no_weight_gradient(name, monkeypatch):
    layer = _layer(name)
    calls = []
    real = Geometry.weight_gradient
    monkeypatch.setattr(Geometry, "weight_gradient", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(2, layer.in_channels, 7, 7, dtype=DTYPE, requires_grad=True)
    y = layer(x)
    grad_x, = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    assert calls == [], "the input-gradient pass ran the weight gradient"
    grad_x.square().sum().backward()  # the outer pass: weight gradients through both paths
    assert len(calls) == 2 and layer.weight.grad is not None and layer.bias.grad is not None


def test_a_parameter_gradient_computes_no_input_gradient(monkeypatch):
    layer = _layer("conv k4 s2")
    calls = []
    real = Geometry.adjoint
    monkeypatch.setattr(Geometry, "adjoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(2, layer.in_channels, 7, 7, dtype=DTYPE, requires_grad=True)
    layer(x).square().sum().backward(inputs=[layer.weight])
    assert calls == [] and x.grad is None and layer.weight.grad is not None


def test_torch_func_transforms_get_the_native_convolution():
    layer = _layer("transposed k5 s2 p2 op1")
    x = torch.randn(2, 4, 5, 5, dtype=DTYPE)
    params = dict(layer.named_parameters())

    def loss(p, module):
        inner = grad(lambda x_: functional_call(module, p, (x_,)).square().sum())(x)
        return inner.square().sum()

    ours = grad(loss)(params, layer)
    native = NATIVE[type(layer)](4, 16, 5, stride=2, padding=2, output_padding=1).to(DTYPE)
    expected = grad(loss)(params, native)
    for key in params:
        torch.testing.assert_close(ours[key], expected[key], rtol=1e-12, atol=1e-12)


def test_the_phases_form_is_the_transposed_convolution():
    """Any stride, kernel, padding and output padding, to 1-5 channels (the "phases" form): equal
    to PyTorch's transposed convolution in float64, shape included."""
    gen = torch.Generator().manual_seed(0)

    def draw(low, high):
        return int(torch.randint(low, high + 1, (), generator=gen))

    checked = 0
    while checked < 200:
        stride, kernel = (draw(2, 3), draw(1, 3)), (draw(1, 6), draw(1, 6))
        padding = (draw(0, kernel[0] - 1), draw(0, kernel[1] - 1))
        geometry = Geometry(True, stride, padding, (1, 1), (draw(0, stride[0] - 1), draw(0, stride[1] - 1)), 1)
        x = torch.randn(2, draw(1, 4), draw(1, 9), draw(1, 9), dtype=DTYPE, generator=gen)
        weight = torch.randn(x.shape[1], draw(1, 5), *kernel, dtype=DTYPE, generator=gen)
        bias = torch.randn(weight.shape[1], dtype=DTYPE, generator=gen)
        try:
            expected = torch.nn.functional.conv_transpose2d(x, weight, bias, stride, padding,
                                                            geometry.output_padding)
        except RuntimeError:  # an output size below 1
            continue
        assert geometry.cpu_form(x.shape[1], weight.shape)[0] == "phases"
        torch.testing.assert_close(geometry.run(x, weight, bias), expected, rtol=1e-12, atol=1e-12)
        checked += 1


@pytest.mark.parametrize("kernel, stride, channels, form", [
    (4, 2, 15, "phases"), (4, 2, 63, "phases"), (4, 2, 64, "as is"), ((4, 6), (2, 3), 32, "phases"),
    (5, 2, 15, "phases"), (5, 2, 16, "as is"), (4, 3, 16, "as is"), ((4, 5), 2, 32, "as is")])
def test_which_strided_transposed_convolutions_run_by_phases(kernel, stride, channels, form):
    """By phases: to fewer than 16 channels, or to fewer than 64 where the stride divides the kernel
    (no phase has a zero tap)."""
    layer = ConvTranspose2d(8, channels, kernel, stride=stride)
    assert layer.geometry.cpu_form(8, layer.weight.shape)[0] == form


def test_other_devices_run_the_layer_as_is(monkeypatch):
    """The CPU's forms (phases, flipped, depthwise) stay on the CPU: on any other
    device (here "meta") one call of PyTorch's convolution with the layer's own geometry and bias."""
    calls = []
    real = torch.convolution
    monkeypatch.setattr(torch, "convolution", lambda *args: calls.append(args) or real(*args))
    layer = LAYERS["transposed k4 s2 p1 to 3 channels"]().to("meta")
    geometry = layer.geometry
    assert geometry.cpu_form(layer.in_channels, layer.weight.shape)[0] == "phases"
    y = geometry.run(torch.empty(2, 4, 5, 5, device="meta"), layer.weight, layer.bias)
    assert y.shape == (2, 3, 10, 10) and len(calls) == 1
    assert calls[0][2] is layer.bias and calls[0][3:] == ((2, 2), (1, 1), (1, 1), True, (0, 0), 1)


def test_unsupported_settings_are_refused():
    with pytest.raises(ValueError, match="output_padding < stride"):
        ConvTranspose2d(2, 2, 3, stride=1, dilation=2, output_padding=1)
    with pytest.raises(ValueError, match="output_size"):
        ConvTranspose2d(2, 2, 4, stride=2, padding=1)(torch.randn(1, 2, 3, 3), output_size=[6, 6])
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        Conv2d(2, 2, 3, padding=1, padding_mode="reflect")(torch.randn(1, 2, 5, 5))


# --- the profiled Fisher step -------------------------------------------------------------------

SLOW_BACKENDS = {"Slow2d", "Slow3d", "SlowDilated2d", "SlowDilated3d", "SlowTranspose2d", "SlowTranspose3d"}


def _convolution_calls(step):
    """(geometry, input shape, weight shape) of every convolution PyTorch ran in ``step``."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    calls = []
    for event in prof.events():
        if event.name == "aten::_convolution":
            shapes, args = event.input_shapes[:2], event.concrete_inputs[3:9]
        elif event.name == "aten::convolution_backward":
            shapes, args = event.input_shapes[1:3], event.concrete_inputs[4:10]
        else:
            continue
        stride, padding, dilation, transposed, output_padding, groups = args
        calls.append((Geometry(transposed, tuple(stride), tuple(padding), tuple(dilation), tuple(output_padding),
                               groups), tuple(shapes[0]), tuple(shapes[1])))
    return calls


def _layer_geometries(model):
    """Every layer's own geometry and that of its input gradient (the adjoint), each also in the
    form the CPU runs it (Geometry.cpu_form)."""
    allowed = set()
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        g = module.geometry
        # a transposed layer's adjoint is the plain convolution; a plain one's, the transposed
        # convolution with whichever output padding (< stride) restores the input's size
        adjoints = ({Geometry(False, g.stride, g.padding, g.dilation, (0, 0), g.groups)} if g.transposed else
                    {Geometry(True, g.stride, g.padding, g.dilation, (a, b), g.groups)
                     for a in range(g.stride[0]) for b in range(g.stride[1])})
        allowed |= {g, g.cpu_form(module.in_channels, module.weight.shape)[1]}
        allowed |= adjoints | {a.cpu_form(module.out_channels, module.weight.shape)[1] for a in adjoints}
    return allowed


def _off_backend(dataset):
    """The convolutions of one Fisher step (paper's nets, width 4) that are neither a layer's own
    nor its adjoint, or that PyTorch would run on a slow fallback kernel on this CPU."""
    torch.manual_seed(0)
    model = AutoEncoder(ModelSpec("fisher_ae", dataset, "polynomial", width=4))
    shape = (1, 28, 28) if dataset == "mnist" else (3, 64, 64)
    x = torch.rand(4, *shape)
    fisher_ae_loss(model.encoder, model.decoder, model.prior, x).loss.backward()  # warm-up
    allowed = _layer_geometries(model)
    bad = []
    for geometry, x_shape, w_shape in _convolution_calls(
            lambda: fisher_ae_loss(model.encoder, model.decoder, model.prior, x).loss.backward()):
        backend = torch._C._select_conv_backend(
            torch.empty(x_shape), torch.empty(w_shape), None, geometry.stride, geometry.padding, geometry.dilation,
            geometry.transposed, geometry.output_padding, geometry.groups)
        if geometry not in allowed or str(backend).split(".")[-1] in SLOW_BACKENDS:
            bad.append((geometry, x_shape, w_shape, str(backend)))
    return bad


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_a_fisher_step_runs_every_convolution_on_the_backend(dataset):
    assert _off_backend(dataset) == []


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_the_check_catches_the_native_double_backward(dataset, monkeypatch):
    monkeypatch.setattr(Conv2d, "forward", nn.Conv2d.forward)
    monkeypatch.setattr(ConvTranspose2d, "forward", nn.ConvTranspose2d.forward)
    bad = _off_backend(dataset)
    assert bad and all(g.dilation == (2, 2) for g, *_ in bad), bad  # the dilated terms, weight = a feature map
