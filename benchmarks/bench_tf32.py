"""How far TF32 products move a training step's gradients (training.tf32): emulated on the CPU, or on a GPU.

    python benchmarks/bench_tf32.py --root ../shared/data                 # MNIST nets, width 16
    python benchmarks/bench_tf32.py --root ../shared/data --widths 128 --train-steps 10
    python benchmarks/bench_tf32.py --root /tmp/data --device cuda --widths 16 128

On a GPU of the Ampere generation or newer with TF32 on, cuDNN and cuBLAS round the float32
operands of every convolution and matrix product to TF32 (a 10-bit mantissa) and sum in float32.
On the CPU this script emulates that rounding: a dispatch mode rounds (to nearest even) the float32
operands of every convolution, convolution backward and matrix product of one loss-and-gradient
pass, the rest staying float32 (an emulation: a GPU's kernels also sum in other orders, which
float32 itself shows). With ``--device cuda`` the TF32 pass is the GPU's own (torch's TF32 flags on,
the float32 pass with them off). For each method and width, a model is trained for ``--train-steps`` steps
of the training loop's own step (IEEE float32, Adam, on images of ``--root``'s MNIST or the
embedded set), then the loss and the gradient of every parameter on one batch are computed three
ways: in float64 (the reference), in float32, and in float32 with TF32 products. Printed: each loss
term's relative difference from float64, and the relative error of the whole gradient (the norm of
the difference over the norm of float64's, all parameters as one vector) and of the worst
parameter tensor; for scale, how much another batch's gradient differs from the first's (the
minibatch noise a step already has). Group norm runs PyTorch's layer, as on a GPU."""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import spec_of  # noqa: E402

from fisherae import group_norm  # noqa: E402
from fisherae.config import load_config  # noqa: E402
from fisherae.data import load_split, split_tensors, to_float  # noqa: E402
from fisherae.devices import use_tf32  # noqa: E402
from fisherae.host_memory import keep_freed_memory  # noqa: E402
from fisherae.training import _OBJECTIVES, TrainingStep  # noqa: E402

aten = torch.ops.aten
PRODUCTS = {aten.convolution.default, aten.convolution_backward.default, aten.mm.default, aten.bmm.default,
            aten.addmm.default}
METHODS = ("fisher_ae", "vae")  # one draw of noise a step (the WAE-GAN also draws prior samples)


def to_tf32(t):
    """``t`` with its float32 values rounded to TF32's 10-bit mantissa (nearest, ties to even)."""
    if not (isinstance(t, torch.Tensor) and t.dtype == torch.float32):
        return t
    bits = t.contiguous().view(torch.int32)
    bits = (bits + 0x0FFF + ((bits >> 13) & 1)) & ~0x1FFF
    return bits.view(torch.float32).view(t.shape)


class TF32Products(TorchDispatchMode):
    """Every convolution and matrix product gets its float32 operands rounded to TF32."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in PRODUCTS:
            args = tuple(to_tf32(a) for a in args)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def products(device: torch.device, tf32: bool):
    """Float32 products in TF32 (``tf32``) or IEEE: a GPU's own flags, the CPU's emulation."""
    if device.type == "cuda":
        use_tf32(tf32)
        try:
            yield
        finally:
            use_tf32(False)
    else:
        with TF32Products() if tf32 else contextlib.nullcontext():
            yield


class Objective:
    """What the training loop's objective (fisherae.training) is called with, for ``model``,
    without an optimiser step."""

    def __init__(self, model):
        self.model = model

    def update(self, name: str, loss: torch.Tensor) -> None:
        """No optimiser step: the caller takes the gradient itself."""


def loss_and_gradient(model, x, eps, dtype, tf32=False):
    """(terms, the gradient of every parameter in float64) of the method's loss on ``x`` with the draws ``eps``."""
    model = copy.deepcopy(model).to(dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    with products(x.device, tf32):
        terms = _OBJECTIVES[model.spec.method](Objective(model), x.to(dtype), eps.to(dtype))
        grads = torch.autograd.grad(terms["loss"], params)
    return {name: float(value.detach()) for name, value in terms.items()}, [g.double().flatten() for g in grads]


def relative_error(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float((torch.cat(a) - torch.cat(b)).norm() / torch.cat(b).norm())


def images(args) -> torch.Tensor:
    cfg = ({"source": "torchvision", "root": args.root, "download": False} if args.root
           else {"source": "embedded"})
    data, _ = split_tensors(load_split("mnist", cfg, "train"))
    needed = args.batch * (args.train_steps + 2)
    if len(data) < needed:
        raise SystemExit(f"{len(data)} training images, {needed} needed: fewer --train-steps or a smaller --batch")
    return to_float(data[:needed])


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--root", help="folder holding MNIST/raw (default: the embedded images)")
    parser.add_argument("--config", default="config/config.yaml", help="training settings (default: the paper's)")
    parser.add_argument("--widths", type=int, nargs="+", default=[16])
    parser.add_argument("--methods", nargs="+", default=["fisher_ae", "vae"], choices=METHODS)
    parser.add_argument("--train-steps", type=int, default=200, help="IEEE float32 steps before the comparison")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="a model and its draws per seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (TF32 emulated) or cuda (the GPU's own TF32)")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    use_tf32(False)  # the training steps before the comparison: IEEE float32
    group_norm.MIN_ELEMENTS = float("inf")  # PyTorch's group norm, as on a GPU
    device = torch.device(args.device)
    config, x = load_config(args.config), images(args).to(device)
    batches = x.split(args.batch)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu, TF32 emulated"
    print(f"device={device} ({name}) torch={torch.__version__} batch={args.batch} train_steps={args.train_steps} "
          f"images={'MNIST at ' + args.root if args.root else 'embedded'}")
    print(f"{'method':<10} {'width':>5} {'seed':>4}  {'gradient: float32':>17} {'TF32':>9} {'worst tensor, TF32':>19}"
          f" {'another batch':>13}  loss terms, TF32 (float32) against float64")
    for method in args.methods:
        for width in args.widths:
            for seed in args.seeds:
                torch.manual_seed(seed)
                step = TrainingStep(spec_of(config, "mnist", width, method),
                                    {**config["training"], "step_mode": "eager"}, device)
                step.generator.manual_seed(seed)
                for batch in batches[2:]:
                    step(batch)
                model = step.model
                eps = torch.randn(config["training"]["n_samples"], args.batch, model.spec.latent,
                                  generator=torch.Generator().manual_seed(seed + 1)).to(device)
                terms64, ref = loss_and_gradient(model, batches[0], eps, torch.float64)
                terms32, g32 = loss_and_gradient(model, batches[0], eps, torch.float32)
                terms_tf, gtf = loss_and_gradient(model, batches[0], eps, torch.float32, tf32=True)
                _, other = loss_and_gradient(model, batches[1], eps, torch.float64)
                worst = max(relative_error([a], [b]) for a, b in zip(gtf, ref))
                terms = ", ".join(f"{name} {abs(terms_tf[name] / v - 1):.1e} ({abs(terms32[name] / v - 1):.1e})"
                                  for name, v in terms64.items() if name != "loss")
                print(f"{method:<10} {width:>5} {seed:>4}  {relative_error(g32, ref):17.2e} {relative_error(gtf, ref):9.2e}"
                      f" {worst:19.2e} {relative_error(other, ref):13.2e}  {terms}", flush=True)


if __name__ == "__main__":
    main()
