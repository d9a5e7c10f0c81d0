"""Convolutions whose second derivatives run on the backend's ordinary kernels.

The Fisher AE loss (eq. 11) differentiates the decoder's and the encoder's input gradients
again. PyTorch's own double backward of a convolution computes one of its terms as a dilated
convolution whose "weight" is a feature map; cuDNN refuses it when the layer is a transposed
convolution with an output padding, so it falls to ``slow_conv_dilated2d``, an im2col loop
over the output channels (PyTorch issue 22577). Here each convolution is an autograd Function
whose backward is itself a first-order convolution (the input gradient is the adjoint
convolution, the weight gradient ``convolution_backward`` asking for the weight alone), so
every input gradient of every order, and the weight gradients taken through them, dispatch to
cuDNN/oneDNN: all that eq. 11 needs. (A weight gradient differentiated again, which eq. 11 never
does, takes PyTorch's own double backward of ``convolution_backward``.)

The backward computes only what the running backward pass will use (autograd's
``_will_engine_execute_node``, which ``torch.utils.checkpoint`` uses too): the inner gradients of
eq. 10, ``torch.autograd.grad(..., z)``, compute no weight gradient, and the outer
``backward(inputs=parameters)`` no gradient of the data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from fisherae.pruned_backward import entered, runs_plainly, wanted

_Pair = tuple[int, int]


@dataclass(frozen=True)
class Geometry:
    """stride, padding, dilation, groups and, for a transposed convolution, output padding."""

    transposed: bool
    stride: _Pair
    padding: _Pair
    dilation: _Pair
    output_padding: _Pair
    groups: int

    def run(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution itself, on the backend's forward kernel, in its ``cpu_form`` on the CPU."""
        form, geometry = self.cpu_form(x.shape[1], weight.shape) if x.device.type == "cpu" else ("as is", self)
        if form == "phases":
            return _transposed_by_phases(x, weight, bias, self, geometry)
        if form == "flipped":
            weight = weight.transpose(0, 1).flip(2, 3)
        elif form == "depthwise":
            weight, kept_bias, bias = weight.reshape(-1, 1, *weight.shape[2:]), bias, None
        y = torch.convolution(x, weight, bias, geometry.stride, geometry.padding, geometry.dilation,
                              geometry.transposed, geometry.output_padding, geometry.groups)
        if form == "depthwise":
            y = y.sum(1, keepdim=True)
            y = y if kept_bias is None else y + kept_bias.view(1, 1, 1, 1)
        return y

    def cpu_form(self, in_channels: int, weight_shape: torch.Size) -> tuple[str, Geometry]:
        """How the CPU runs this convolution: the same sums, in a form oneDNN runs faster where
        it runs this one slowly (MNIST nets, width 16, one thread: 26 vs 10 ms and 17 vs 7 ms):
        - "flipped": a transposed convolution of stride 1 (the adjoint of a 'same' convolution) as
          the plain convolution with the weight's channels swapped and its kernel flipped, padded
          by ``flipped_padding``;
        - "depthwise": a plain convolution to one output channel (the decoder's last layer) as a
          depthwise convolution (a kernel per input channel) summed over the channels;
        - "phases": a strided transposed convolution (dilation 1) to fewer than 16 channels
          (oneDNN's channel block: the encoder's first layer's adjoint; 3.4 vs 1.1 ms, 16.5 vs 7.5 ms
          on CelebA), or to fewer than 64 where the stride divides the kernel, so that no phase
          has a zero tap (the MNIST nets at width 16: the decoder's 64 -> 32 layer 13.7 vs 11.0 ms,
          the encoder's 32 -> 16 adjoint 1.43 vs 0.85 ms; at 64 channels and at CelebA's 5 x 5
          kernels oneDNN's own kernel is faster: BENCHMARKS.md), as one plain stride-1 convolution
          to a channel block per output phase, interleaved (``_transposed_by_phases``);
        - "as is" otherwise. Returns the form and the geometry of the convolution it runs."""
        if self.groups != 1:
            return "as is", self
        kernel = tuple(weight_shape[2:])
        padding = self.flipped_padding(kernel)
        if self.transposed and padding is not None:
            return "flipped", Geometry(False, (1, 1), padding, self.dilation, (0, 0), 1)
        if self.transposed and self.dilation == (1, 1) and self.by_phases(weight_shape[1], kernel):
            return "phases", Geometry(False, (1, 1), self.phase_padding(kernel), (1, 1), (0, 0), 1)
        if not self.transposed and weight_shape[0] == 1 and in_channels > 1:
            return "depthwise", Geometry(False, self.stride, self.padding, self.dilation, (0, 0), in_channels)
        return "as is", self

    def by_phases(self, out_channels: int, kernel: _Pair) -> bool:
        """Whether the CPU runs this transposed convolution by phases (``cpu_form``): to fewer than
        16 channels, or to fewer than 64 where the stride (not 1) divides the kernel."""
        whole = all(k % s == 0 for k, s in zip(kernel, self.stride))
        return out_channels < 16 or (whole and out_channels < 64 and self.stride != (1, 1))

    def flipped_padding(self, kernel: _Pair) -> _Pair | None:
        """dilation (kernel - 1) - padding per dimension, the padding that turns this stride-1
        convolution into its flipped-kernel twin (plain <-> transposed); None where the stride is
        not 1 or the padding exceeds dilation (kernel - 1)."""
        edge = tuple(d * (k - 1) - p for k, p, d in zip(kernel, self.padding, self.dilation))
        return edge if self.stride == (1, 1) and min(edge) >= 0 else None

    def phase_padding(self, kernel: _Pair) -> _Pair:
        """The padding of the "phases" form's plain convolution (kernel ceil(k / stride)): one
        window less than its kernel, more where the output padding reaches past the input."""
        return tuple(max(taps - 1, (k + op - 1 - p) // s) for k, s, p, op, taps in zip(
            kernel, self.stride, self.padding, self.output_padding, _phase_taps(kernel, self.stride)))

    def adjoint(self, x_shape: torch.Size, y_shape: torch.Size, kernel: _Pair) -> Geometry:
        """The geometry of the input gradient: the transposed convolution of this one (with the
        output padding that restores the input's size), or the plain one of a transposed one."""
        if self.transposed:
            return Geometry(False, self.stride, self.padding, self.dilation, (0, 0), self.groups)
        output_padding = tuple(
            x_shape[2 + i] - ((y_shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                              + self.dilation[i] * (kernel[i] - 1) + 1) for i in range(2))
        return Geometry(True, self.stride, self.padding, self.dilation, output_padding, self.groups)

    def weight_gradient(self, grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: bool,
                        mask: tuple[bool, bool]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(dL/dweight, dL/dbias) from the output gradient, on the backend's weight-gradient kernel
        (on the CPU, for a stride-1 layer with one channel on one side, by ``_one_channel_weight_gradient``)."""
        narrow, wide = (x, grad_y) if self.transposed else (grad_y, x)
        kernel = tuple(weight.shape[2:])
        edge = self.flipped_padding(kernel)
        if (x.device.type == "cpu" and self.groups == 1 and edge is not None and narrow.shape[1] == 1
                and wide.shape[1] > 1):
            grad_w = _one_channel_weight_gradient(wide, narrow, kernel, edge, self.dilation)
            return grad_w if mask[0] else None, grad_y.sum((0, 2, 3)) if bias and mask[1] else None
        bias_sizes = [weight.shape[1] * self.groups if self.transposed else weight.shape[0]] if bias else None
        _, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_y, x, weight, bias_sizes, self.stride, self.padding, self.dilation, self.transposed,
            self.output_padding, self.groups, [False, mask[0], bias and mask[1]])
        return grad_w, grad_b


def _one_channel_weight_gradient(wide: torch.Tensor, narrow: torch.Tensor, kernel: _Pair, edge: _Pair,
                                 dilation: _Pair) -> torch.Tensor:
    """The weight gradient [1, C, kh, kw] of a stride-1 convolution whose one side has one channel:
    a plain one to one channel (``wide`` its input [N, C, H, W], ``narrow`` its output gradient) or
    a transposed one from one channel (``wide`` its output gradient, ``narrow`` its input). Tap
    (a, b) pairs wide[:, :, p, q] with narrow[:, 0, p + padding - a dilation, ...], so the taps of
    ``narrow``, padded by ``edge`` (the layer's ``flipped_padding``), unfolded over wide's grid make
    it one batched matrix product (oneDNN's weight-gradient kernel ran this case 2-3x slower:
    BENCHMARKS.md)."""
    n, c, height, width = wide.shape
    padded = torch.nn.functional.pad(narrow[:, 0], (edge[1], edge[1], edge[0], edge[0]))
    windows = padded.unfold(1, dilation[0] * (kernel[0] - 1) + 1, 1).unfold(2, dilation[1] * (kernel[1] - 1) + 1, 1)
    taps = windows[..., ::dilation[0], ::dilation[1]].permute(0, 3, 4, 1, 2).reshape(n, -1, height * width)
    # taps: [N, kh kw, H W], the taps reversed; the copy runs along W (unfold's im2col did not, 2x slower).
    # The product as taps x wide^T ([kh kw, C] a sample): 20-30 % faster than wide x taps^T (BENCHMARKS.md)
    grad = torch.bmm(taps, wide.reshape(n, c, -1).transpose(1, 2)).sum(0)
    return grad.t().flip(1).reshape(1, c, *kernel)


def _phase_taps(kernel: _Pair, stride: _Pair) -> _Pair:
    """Taps of a transposed convolution that reach one output phase: ceil(k / stride) per dimension."""
    return tuple(-(-k // s) for k, s in zip(kernel, stride))


@functools.cache
def _phase_gather(kernel: _Pair, stride: _Pair, padding: _Pair) -> tuple[torch.Tensor, bool]:
    """Where ``_transposed_by_phases`` takes each weight of its plain convolution from: an index
    [s_h s_w t_h t_w] into the kernel flattened (phase (r, q), window position (j, jj): the taps
    (r + p) mod s + s (t - 1 - j) of each axis), with kh kw (one past the kernel: a zero appended)
    where a tap lies past the kernel; and whether one does. (An index_select: 0.04 ms, where
    advanced indexing of the padded kernel took 0.3 ms a call, BENCHMARKS.md.)"""
    def taps(k, s, p, t):  # [s, t]: the kernel index of window position j for phase r (k: none)
        return torch.tensor([[min((r + p) % s + s * (t - 1 - j), k) for j in range(t)] for r in range(s)])

    (sh, sw), (th, tw) = stride, _phase_taps(kernel, stride)
    rows = taps(kernel[0], sh, padding[0], th).view(sh, 1, th, 1)
    cols = taps(kernel[1], sw, padding[1], tw).view(1, sw, 1, tw)
    outside = (rows == kernel[0]) | (cols == kernel[1])
    index = torch.where(outside, kernel[0] * kernel[1], rows * kernel[1] + cols).reshape(-1)
    return index, bool(outside.any())


def _transposed_by_phases(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, layer: Geometry,
                          plain: Geometry) -> torch.Tensor:
    """``layer``'s transposed convolution (dilation 1, one group) by sub-pixel phases: output pixel
    o = s q + r takes the taps a = (r + p) mod s + s t of input q + (r + p) div s - t, so all s^2
    phases are one plain stride-1 convolution (``plain``, kernel ceil(k / s)) to s^2 blocks of
    the output channels (the kernel reversed; past k a zero), each block then written into its
    phase of the output. The same sums as the transposed convolution, in another order."""
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    kernel = tuple(weight.shape[2:])
    th, tw = _phase_taps(kernel, layer.stride)
    n, c_in, c_out = x.shape[0], weight.shape[0], weight.shape[1]
    index, zero = _phase_gather(kernel, layer.stride, layer.padding)
    flat = weight.reshape(c_in, c_out, -1)
    flat = torch.nn.functional.pad(flat, (0, 1)) if zero else flat  # the last entry: a zero tap
    w = flat.index_select(2, index).view(c_in, c_out, sh, sw, th, tw)
    w = w.permute(2, 3, 1, 0, 4, 5).reshape(sh * sw * c_out, c_in, th, tw)
    y = torch.convolution(x, w, None, plain.stride, plain.padding, plain.dilation, False, (0, 0), 1)
    y = y.view(n, sh, sw, c_out, *y.shape[2:])
    size = [(x.shape[2 + i] - 1) * layer.stride[i] - 2 * layer.padding[i] + kernel[i] + layer.output_padding[i]
            for i in range(2)]
    out = x.new_empty(n, c_out, *size)
    shift = [plain.padding[0] - (th - 1), plain.padding[1] - (tw - 1)]  # past the window's own padding
    for r in range(sh):
        top = (r + ph) // sh + shift[0]
        for q in range(sw):
            left = (q + pw) // sw + shift[1]
            phase = out[:, :, r::sh, q::sw]
            phase.copy_(y[:, r, q, :, top:top + phase.shape[2], left:left + phase.shape[3]])
    return out if bias is None else out.add_(bias.view(1, -1, 1, 1))


def convolution(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geometry: Geometry) -> torch.Tensor:
    """``geometry``'s convolution of ``x``; its input gradients differentiable to any order on the
    backend kernels (the module's docstring).

    Under torch.func transforms (grad, vmap: the tests' float64 references) the native
    convolution runs instead: functorch does not tell a Function which gradients it needs."""
    if runs_plainly((x, weight) if bias is None else (x, weight, bias)):
        return geometry.run(x, weight, bias)
    return _Convolution.apply(*entered((x, weight, bias)), geometry)


class _Convolution(torch.autograd.Function):
    """y = conv(x, weight) + bias; backward: dL/dx by the adjoint convolution, dL/dweight and
    dL/dbias by the weight-gradient kernel, each only if this backward pass uses it."""

    @staticmethod
    def forward(x, weight, bias, geometry):
        return geometry.run(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, geometry = inputs
        ctx.save_for_backward(x, weight)
        ctx.geometry, ctx.has_bias, ctx.y_shape = geometry, bias is not None, output.shape

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        want = wanted(ctx) + [False]  # (x, weight[, bias]): a None bias has no entry
        grad_x = grad_w = grad_b = None
        if want[0]:
            adjoint = ctx.geometry.adjoint(x.shape, ctx.y_shape, tuple(weight.shape[2:]))
            grad_x = convolution(grad_y, weight, None, adjoint)
        if want[1] or want[2]:  # with create_graph this runs differentiably (native double backward)
            grad_w, grad_b = ctx.geometry.weight_gradient(grad_y, x, weight, ctx.has_bias, (want[1], want[2]))
        return grad_x, grad_w, grad_b, None


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state dict) on the fallback-free ``convolution``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return convolution(x, self.weight, self.bias, self.geometry)

    @property
    def geometry(self) -> Geometry:
        if self.padding_mode != "zeros":
            raise ValueError(f"fisherae Conv2d supports padding_mode='zeros' only, got {self.padding_mode!r}")
        padding = self.padding
        if isinstance(padding, str):  # 'valid', or 'same' with an odd span (symmetric padding)
            spans = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            if padding == "same" and any(span % 2 for span in spans):
                raise ValueError("fisherae Conv2d: padding='same' needs an odd kernel span (symmetric padding)")
            padding = tuple(span // 2 for span in spans) if padding == "same" else (0, 0)
        return Geometry(False, self.stride, padding, self.dilation, (0, 0), self.groups)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters and state dict) on the fallback-free ``convolution``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)) or self.padding_mode != "zeros":
            raise ValueError("fisherae ConvTranspose2d needs output_padding < stride and padding_mode='zeros'")

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError("fisherae ConvTranspose2d takes no output_size: set output_padding instead")
        return convolution(x, self.weight, self.bias, self.geometry)

    @property
    def geometry(self) -> Geometry:
        return Geometry(True, self.stride, self.padding, self.dilation, self.output_padding, self.groups)
