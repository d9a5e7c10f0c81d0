"""Group normalisation whose second derivative is one closed form, compiled on the CPU.

The Fisher AE loss (eq. 11) differentiates the encoder's and decoder's input gradients again,
so every normalisation layer's backward runs under ``create_graph``. PyTorch then computes that
backward as a differentiable composite of about 70 elementwise ops and, in the outer backward,
differentiates each of them: on the CPU, where each op is a pass over the feature map, about a
quarter of a Fisher step (MNIST nets, width 16). Here the backward is the fused first-order
kernel (``native_group_norm_backward``; with a ReLU, the same two passes compiled with its mask)
wrapped in a Function whose own backward is the closed form below, compiled by ``torch.compile``
(BENCHMARKS.md). Every group mean in it follows from five
sums per sample and channel, so the compiled form reads the map twice: once for the sums, once to
write both results (``_double_backward``).

Per sample and group of M values, with x^ = (x - m) r, r = (var + eps)^-1/2, u = gamma * g_y and
P(v) = v - mean(v) - x^ mean(v x^) (self-adjoint), the first-order backward is
g_x = r P(u), g_gamma = sum g_y x^, g_beta = sum g_y. Given cotangents a (of g_x), c (of g_gamma)
and e (of g_beta):
  d/dg_y   = gamma r P(a) + c x^ + e
  d/dgamma = sum g_y r P(a)
  d/dx     = r P(D) - (r^2 / M) <a, P(u)> x^,   D = -r (a mean(u x^) + u mean(a x^)) + c g_y
(the last from d/dx^ = D and d/dr = <a, P(u)>, through x^(x) and r(x)).

A ReLU after the layer (``relu``: the nets' every group norm) is folded in: its mask, where
y = gamma x^ + beta > 0, is constant almost everywhere, so the layer's backward is the one above
of g_y masked, and its second derivative the closed form of the masked g_y with d/dg_y masked too.
The mask is recomputed from x inside the compiled backward and closed form, which read x anyway,
so the ReLU costs no pass of its own over the map in the backward (PyTorch's ReLU: three passes a
layer in the inner gradient and its derivative, and a map of zeros).

Only on the CPU, and only for feature maps of at least MIN_ELEMENTS values (elsewhere the layer
is PyTorch's group norm, then PyTorch's ReLU): in eager ops the closed form is slower than
PyTorch's composite (each op a memory-bound pass), so it runs compiled or not at all, and a
compile (about 1.5 s a graph, two a map shape: the first order, whatever gradients a pass wants,
and the closed form; each serving every batch size; reused across processes through inductor's
cache) repays itself only on large maps. Where compiling fails (no
C++ compiler, say), the layer falls back to PyTorch's own group norm (and ReLU) and
``double_backward_mode`` says why. On a GPU the layer is PyTorch's own (its composite runs inside
the step's CUDA graph).
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn
from torch.nn import functional as F

from fisherae.pruned_backward import entered, runs_plainly, wanted

log = logging.getLogger(__name__)

COMPILED = "compiled closed form"
# The MNIST decoder's three maps at width 16 and batch 128 (0.8 to 3.2 M values): nearly all of the
# gain; the smoke DAG's largest (CelebA, width 4, batch 32: 2^19) stays on PyTorch's layer.
MIN_ELEMENTS = 600_000
_RECOMPILE_LIMIT = 64  # one compiled graph per feature-map shape and dtype (a net has 7 or 9)
# Each graph takes any batch size: its sample dimension is symbolic, the rest static (an epoch's
# last, partial batch and the held-out batches reuse the training batch's graphs). Dynamo's
# automatic dynamic shapes stay off: they would make a second map's sizes symbolic too, and
# inductor's kernels for symbolic map sizes were 10x slower (BENCHMARKS.md).
_state = {"ran": False, "failed": None}  # in this process: a compiled form has run; why compiling failed


def double_backward_mode() -> str:
    """How the CPU has computed group norm's second derivative in this process: COMPILED (for
    the maps of MIN_ELEMENTS values or more), or PyTorch's composite and why."""
    if _state["failed"]:
        return f"PyTorch's composite (torch.compile failed: {_state['failed']})"
    return COMPILED if _state["ran"] else f"PyTorch's composite (no map of {MIN_ELEMENTS} values or more)"


def group_norm(x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float,
               relu: bool = False) -> torch.Tensor:
    """``F.group_norm`` (affine), followed by ``F.relu`` if ``relu``; on the CPU, for a map of
    MIN_ELEMENTS values or more, with the compiled closed-form double backward (the ReLU's mask
    folded into the group norm's compiled backward and closed form)."""
    tensors = (x, weight, bias)
    if x.device.type != "cpu" or _state["failed"] or x.numel() < MIN_ELEMENTS or runs_plainly(tensors):
        y = F.group_norm(x, groups, weight, bias, eps)
        return F.relu(y) if relu else y
    return _GroupNorm.apply(*entered(tensors), groups, eps, relu)[0]


class _GroupNorm(torch.autograd.Function):
    """y = group norm of x by PyTorch's kernel (also returning each group's mean and 1/std), then
    ReLU in place if ``relu``; its backward is the fused kernel (compiled with the ReLU's mask),
    as the differentiable ``_GroupNormBackward`` under create_graph."""

    @staticmethod
    def forward(x, weight, bias, groups, eps, relu):
        n, c = x.shape[:2]
        y, mean, rstd = torch.ops.aten.native_group_norm(x, weight, bias, n, c, x[0, 0].numel(), groups, eps)
        return y.relu_() if relu else y, mean, rstd

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, groups, _, relu = inputs
        _, mean, rstd = output
        ctx.save_for_backward(x, weight, bias if relu else None, mean, rstd)
        ctx.groups = groups
        ctx.mark_non_differentiable(mean, rstd)

    @staticmethod
    def backward(ctx, grad_y, _mean, _rstd):
        x, weight, relu_bias, mean, rstd = ctx.saved_tensors
        mask = wanted(ctx)  # (x, weight, bias)
        if not any(mask):
            return None, None, None, None, None, None
        if not torch.is_grad_enabled():  # a first-order backward: the kernel alone
            return (*_first_order(grad_y, x, weight, relu_bias, mean, rstd, ctx.groups, tuple(mask)), None, None, None)
        grad_y, x, weight = entered((grad_y, x, weight))
        relu_bias = None if relu_bias is None else relu_bias.detach()  # the mask: no derivative
        grads = _GroupNormBackward.apply(grad_y, x, weight, relu_bias, mean, rstd, ctx.groups, tuple(mask))
        return (*grads, None, None, None)


def _first_order(grad_y, x, weight, relu_bias, mean, rstd, groups, mask):
    """(g_x, g_gamma, g_beta), each only where ``mask`` says: by PyTorch's fused kernel, or with
    ``relu_bias`` (a ReLU after the layer) by ``_masked_first_order``, compiled."""
    if relu_bias is not None:  # g_gamma and g_beta whatever is wanted: one compiled graph serves every pass
        grads = _compiled_or_eager("first order", grad_y, x, weight, relu_bias, mean, rstd, groups, mask[0])
        return tuple(grad if want else None for grad, want in zip(grads, mask))
    n, c = x.shape[:2]
    return torch.ops.aten.native_group_norm_backward(grad_y, x, mean, rstd, weight, n, c, x[0, 0].numel(), groups,
                                                     list(mask))


class _GroupNormBackward(torch.autograd.Function):
    """(g_x, g_gamma, g_beta) of group norm (and ReLU, given ``relu_bias``) by the fused kernel;
    its backward in closed form."""

    @staticmethod
    def forward(grad_y, x, weight, relu_bias, mean, rstd, groups, mask):
        return _first_order(grad_y, x, weight, relu_bias, mean, rstd, groups, mask)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grad_y, x, weight, relu_bias, mean, rstd, groups, _ = inputs
        ctx.save_for_backward(grad_y, x, weight, relu_bias, mean, rstd)
        ctx.groups = groups
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, a, c, e):
        grad_y, x, weight, relu_bias, mean, rstd = ctx.saved_tensors
        want = wanted(ctx)[:3]  # (grad_y, x, weight) of the tensors
        d_gy, d_x, d_gamma = _compiled_or_eager("double backward", grad_y, x, weight, relu_bias, mean, rstd,
                                                ctx.groups, a, c, e)
        return (d_gy if want[0] else None, d_x if want[1] else None, d_gamma if want[2] else None,
                None, None, None, None, None)


def _compiled_or_eager(name: str, *args):
    """``_FORMS[name](*args)``, compiled while compiling works; eager for the graphs already built
    once it has failed (later layers run PyTorch's own). Where nothing is recorded (a Function's
    forward, a first-order backward) the tensors go in detached: whether an input requires grad
    (the inner gradients' do) is one of dynamo's guards, and would compile the same graph twice."""
    if not torch.is_grad_enabled():
        args = tuple(arg.detach() if isinstance(arg, torch.Tensor) else arg for arg in args)
    if not _state["failed"]:
        try:
            for arg in args:  # the per-sample tensors (maps, means, 1/stds), not the per-channel ones
                if isinstance(arg, torch.Tensor) and arg.dim() >= 2:
                    torch._dynamo.maybe_mark_dynamic(arg, 0)
            with torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT, automatic_dynamic_shapes=False):
                result = _compiled(name)(*args)
            _state["ran"] = True
            return result
        except Exception as err:  # noqa: BLE001 - whatever stops the compiler, the eager form is exact
            _state["failed"] = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
            log.warning("group norm double backward: %s", double_backward_mode())
    return _FORMS[name](*args)


@functools.cache
def _quiet_cuda_warning() -> None:
    # A CUDA build of torch on a machine without CUDA warns on every compile that it found no
    # CUDA runtime (it compiles for the CPU): not news to a CPU run, and noise in its log.
    logging.getLogger("torch.utils.cpp_extension").addFilter(
        lambda record: "No CUDA runtime is found" not in record.getMessage())


@functools.cache
def _compiled(name: str):
    _quiet_cuda_warning()
    # Inductor stores a pointwise value that reads more than realize_reads_threshold (4) inputs
    # rather than recompute it where it is used again: here the ReLU's mask and x^ (x, mean, 1/std,
    # gamma, beta), an extra pass over the map each (the relu form 12.3 vs 6.2 ms, BENCHMARKS.md).
    return torch.compile(_FORMS[name], dynamic=None, options={"realize_reads_threshold": 64})


def _relu_mask(xv, weight, relu_bias, m, r):
    """1 where the ReLU after the layer passes its gradient, else 0: y = x scale + shift > 0 per
    sample and channel (scale = gamma r, shift = beta - m scale), y formed as PyTorch's forward
    kernel forms it (where y is within rounding of 0 the two may differ: either is a subgradient
    of the ReLU there). A float mask: inductor's code for a bool one was 8x slower (BENCHMARKS.md)."""
    channels = xv.shape[1]
    scale = weight.view(1, channels, 1) * r
    return (xv * scale + (relu_bias.view(1, channels, 1) - m * scale)).sign().clamp_min(0)


def _masked_first_order(grad_y, x, weight, relu_bias, mean, rstd, groups: int, want_x: bool):
    """(g_x, g_gamma, g_beta) of ReLU after group norm, g_x only if ``want_x`` (g_gamma and g_beta
    are sums of the per-channel sums the pass makes anyway): the layer's first-order backward of
    g = grad_y where the ReLU passes, in two passes over the map (sums of g and g x^ per sample and
    channel, then g_x = r (u - mean(u) - x^ mean(u x^)), u = gamma g)."""
    channels = x.shape[1]
    per_group, size, xv, m, r = _per_channel(x, mean, rstd, groups)
    g = _relu_mask(xv, weight, relu_bias, m, r) * grad_y.reshape(xv.shape)
    g_sum = g.sum(-1)
    gx_sum = _xhat_sum(g, g_sum, xv, m, r)
    grad_x = None
    if want_x:
        gamma = weight.view(1, channels)
        u_mean, ux_mean = _group_mean(gamma * g_sum, per_group, size), _group_mean(gamma * gx_sum, per_group, size)
        xhat = (xv - m) * r
        grad_x = (r * (gamma.unsqueeze(-1) * g - _to_channels(u_mean, per_group)
                       - xhat * _to_channels(ux_mean, per_group))).view_as(x)
    return grad_x, gx_sum.sum(0), g_sum.sum(0)


def _per_channel(x, mean, rstd, groups: int):
    """What both compiled forms start from: the group shape (n, groups, channels per group), M (the
    values per group), x as [n, channels, values] and each group's mean and 1/std per channel."""
    n, channels = x.shape[:2]
    per_group = (n, groups, channels // groups)
    return (per_group, x[0].numel() // groups, x.reshape(n, channels, -1),
            _to_channels(mean, per_group), _to_channels(rstd, per_group))


def _to_channels(v, per_group):
    """[n, groups] -> [n, channels, 1]: each group's value for each of its channels."""
    n, groups, width = per_group
    return v.view(n, groups, 1).expand(per_group).reshape(n, groups * width, 1)


def _group_mean(v, per_group, size):
    """[n, channels] -> [n, groups]: the sums per channel summed over each group, over its M values."""
    return v.view(per_group).sum(-1) / size


def _xhat_sum(v, v_sum, xv, m, r):
    """The sum of v x^ per sample and channel from sum(v x) and sum(v) (``v_sum``), as PyTorch's
    kernel does: every sum one pass over the map."""
    return ((v * xv).sum(-1) - m[..., 0] * v_sum) * r[..., 0]


def _double_backward(grad_y, x, weight, relu_bias, mean, rstd, groups: int, a, c, e):
    """(d/dgrad_y, d/dx, d/dgamma) of <a, g_x> + <c, g_gamma> + <e, g_beta> (the module's formulas);
    a, c, e may be None (no cotangent), and so may the results. With ``relu_bias`` (a ReLU after
    the layer) the same formulas of g_y where the ReLU passes, d/dgrad_y zero where it does not
    (its mask is constant almost everywhere).

    Two passes over the map: five sums per sample and channel (of a, a x^, g_y, g_y x^, a g_y),
    from which every group mean of the formulas follows, then one elementwise pass,
    d/dgrad_y = L1 a + L2 x^ + L3 and d/dx = r (K1 a + K2 g_y + K3 x^ + K4), with L and K per
    sample and channel. With A = mean(a), AX = mean(a x^), U = mean(u), UX = mean(u x^),
    AU = mean(a u) per group: mean(D) = -r (A UX + U AX) + mean(c g_y) and
    mean(D x^) + d/dr r / M = r (AU - A U - 3 AX UX) + mean(c g_y x^)."""
    channels = x.shape[1]
    if a is None and c is None and e is None:
        return None, None, None
    per_group, size, xv, m, r = _per_channel(x, mean, rstd, groups)  # size: M, values per group

    def to_channels(v):  # [n, groups] -> [n, channels, 1]
        return _to_channels(v, per_group)

    def group_mean(v):  # [n, channels] -> [n, groups]
        return _group_mean(v, per_group, size)

    gyv = grad_y.reshape(xv.shape)
    passes = None if relu_bias is None else _relu_mask(xv, weight, relu_bias, m, r)
    if passes is not None:
        gyv = gyv * passes
    if a is None and c is None:
        d_gy = e.view(1, channels, 1).expand_as(xv)
        return (d_gy if passes is None else d_gy * passes).view_as(x), None, None
    xhat = (xv - m) * r
    gamma = weight.view(1, channels)
    av = 0 if a is None else a.reshape(xv.shape)

    def xhat_sum(v, v_sum):
        return _xhat_sum(v, v_sum, xv, m, r)

    g_sum = gyv.sum(-1)
    gx_sum = xhat_sum(gyv, g_sum)
    coef_a = coef_gy = coef_xhat = constant = 0  # K1 to K4 of d/dx
    d_gy_a = d_gy_xhat = d_gy_constant = 0  # of d/dgrad_y = L1 a + L2 x^ + L3
    d_gamma = None
    if a is not None:
        a_sum = av.sum(-1)
        a_mean, ax_mean = group_mean(a_sum), group_mean(xhat_sum(av, a_sum))
        ag_sum = (av * gyv).sum(-1)
        u_mean, ux_mean = group_mean(gamma * g_sum), group_mean(gamma * gx_sum)
        au_mean = group_mean(gamma * ag_sum)
        # P(a) = a - mean(a) - x^ mean(a x^); d/dgamma = sum over samples of r <g_y, P(a)> per channel
        d_gamma = (r[..., 0] * (ag_sum - to_channels(a_mean)[..., 0] * g_sum
                                - to_channels(ax_mean)[..., 0] * gx_sum)).sum(0)
        gamma_r = gamma.unsqueeze(-1) * r
        d_gy_a, d_gy_xhat = gamma_r, -gamma_r * to_channels(ax_mean)
        d_gy_constant = -gamma_r * to_channels(a_mean)
        # D = -r (a UX + u AX) (+ c g_y below); d/dx = r (D - mean(D) - x^ (mean(D x^) + d/dr r / M))
        coef_a = -to_channels(rstd * ux_mean)
        coef_gy = -gamma_r * to_channels(ax_mean)
        constant = to_channels(rstd * (a_mean * ux_mean + u_mean * ax_mean))
        coef_xhat = -to_channels(rstd * (au_mean - a_mean * u_mean - 3 * ax_mean * ux_mean))
    if c is not None:
        cv = c.view(1, channels)
        coef_gy = coef_gy + cv.unsqueeze(-1)
        constant = constant - to_channels(group_mean(cv * g_sum))
        coef_xhat = coef_xhat - to_channels(group_mean(cv * gx_sum))
        d_gy_xhat = d_gy_xhat + cv.unsqueeze(-1)
    if e is not None:
        d_gy_constant = d_gy_constant + e.view(1, channels, 1)
    d_x = r * (coef_a * av + coef_gy * gyv + coef_xhat * xhat + constant)
    d_gy = d_gy_a * av + d_gy_xhat * xhat + d_gy_constant
    if passes is not None:
        d_gy = d_gy * passes
    return d_gy.view_as(x), d_x.view_as(x), d_gamma


_FORMS = {"first order": _masked_first_order, "double backward": _double_backward}


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters and state dict) with the closed-form double backward;
    with ``relu``, ReLU after it in the same layer (``group_norm``)."""

    def __init__(self, *args, relu: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.affine:
            raise ValueError("fisherae GroupNorm needs affine=True")
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps, self.relu)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", relu=True" if self.relu else "")
