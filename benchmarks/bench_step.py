"""Time one training step of VAE, Fisher AE (polynomial prior) and WAE-GAN on the paper's nets.

    python benchmarks/bench_step.py                      # the whole table, on the GPU if there is one
    python benchmarks/bench_step.py --device cpu --threads 2 --nets mnist --widths 16 128 --methods vae fisher_ae

The step is the training loop's own (``fisherae.training.TrainingStep``: noise draws, loss,
inner gradients, backward, Adam, gradient norms; no host sync), on a fixed batch held on the
device, with the settings of ``--config`` (default: config/config.yaml, the paper's). Each
row is one net x width x method x mode:
- mode ``eager``: op by op; ``cuda_graph``: replayed from one CUDA graph (GPU only);
- ``native conv+norm``: the same step with PyTorch's own convolution and group-norm modules (and
  ReLU modules), whose double backward takes the fallback path (the baseline, main before the
  fallback-free convolutions);
- ``native norm`` (CPU only: the GPU runs PyTorch's group norm anyway): PyTorch's group norm and
  ReLU alone, whose second derivative is autograd's composite (``fisherae.group_norm`` compiles a
  closed form with the ReLU's mask folded in instead);
- ``ieee``: a GPU's float32 products in IEEE arithmetic (``training.tf32: false``), the other rows
  in TF32; ``--tf32`` picks the rows' arithmetic (default: the config's), ``--tf32 on off`` both (a
  CPU computes the same either way).
Steps of all rows of one net and width are interleaved after a warm-up; the median and the
ratio to the eager VAE step of the same net, width and arithmetic are printed. (Peak memory: the rows
share one process, so it is measured per run by ``bench_epoch.py`` and logged by training.)"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

from fisherae import convolutions, group_norm
from fisherae.config import load_config, validate_config
from fisherae.devices import use_tf32
from fisherae.host_memory import keep_freed_memory
from fisherae.models import ARCHITECTURES, ModelSpec
from fisherae.training import TrainingStep, model_spec

PRIORS = {"fisher_ae": "polynomial", "vae": "gaussian", "wae_gan": "gaussian"}


class NativeGroupNorm:
    """The forward that ``native_modules`` gives fisherae's GroupNorm: PyTorch's group norm, then
    PyTorch's ReLU where the layer has one (``relu``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.GroupNorm.forward(self, x)
        return F.relu(y) if self.relu else y


NATIVE = {"conv": [(convolutions.Conv2d, nn.Conv2d), (convolutions.ConvTranspose2d, nn.ConvTranspose2d)],
          "norm": [(group_norm.GroupNorm, NativeGroupNorm)]}  # fisherae's modules and PyTorch's, by baseline part


@contextlib.contextmanager
def native_modules(parts: tuple[str, ...]):
    """Run fisherae's modules of ``parts`` (keys of NATIVE) as PyTorch's own."""
    pairs = [pair for part in parts for pair in NATIVE[part]]
    saved = [ours.forward for ours, _ in pairs]
    for ours, theirs in pairs:
        ours.forward = theirs.forward
    try:
        yield
    finally:
        for (ours, _), forward in zip(pairs, saved):
            ours.forward = forward


def forward_gflop(model: nn.Module, x: torch.Tensor) -> float:
    """GFLOP (2 x multiply-adds) of the convolutions and linear layers of one encoder-decoder pass on ``x``."""
    flops = []

    def count(layer, inputs, output):
        w = layer.weight
        if isinstance(layer, nn.ConvTranspose2d):
            flops.append(2 * inputs[0].numel() * w[0].numel())
        elif isinstance(layer, nn.Conv2d):
            flops.append(2 * output.numel() * w[0].numel())
        else:
            flops.append(2 * output.numel() * w.shape[1])

    hooks = [layer.register_forward_hook(count) for layer in model.modules()
             if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.decoder(model.encoder(x)[0])
    finally:
        for hook in hooks:
            hook.remove()
    return sum(flops) / 1e9


def spec_of(config: dict, net: str, width: int, method: str) -> ModelSpec:
    """The ModelSpec training builds for ``method`` (with the paper's prior) on ``net`` at ``width``
    under ``config``'s settings."""
    raw = copy.deepcopy(config)
    raw["datasets"] = {net: {**config["datasets"].get(net, {"source": "embedded"}), "width": width}}
    raw["models"] = {method: {"method": method, "prior": PRIORS[method]}}
    return model_spec(validate_config(raw), net, method)


class Row:
    """One timed step: a TrainingStep on a fixed batch."""

    def __init__(self, net: str, width: int, method: str, mode: str, native: tuple[str, ...], config: dict,
                 batch: int, device: torch.device, tf32: bool = True):
        self.method, self.mode, self.native, self.tf32 = method, mode, native, tf32
        torch.manual_seed(0)
        self.step = TrainingStep(spec_of(config, net, width, method), {**config["training"], "step_mode": mode}, device)
        self.step.generator.manual_seed(0)
        arch = ARCHITECTURES[net]
        self.x = torch.rand(batch, arch.channels, arch.size, arch.size, device=device)
        self.device, self.times = device, []

    @property
    def label(self) -> str:
        return (f"{self.method} {self.mode}" + (f" native {'+'.join(self.native)}" if self.native else "")
                + ("" if self.tf32 else " ieee"))

    def run(self, record: bool = True) -> None:
        use_tf32(self.tf32)  # read when a kernel is chosen: each eager step, and a CUDA graph's capture
        with native_modules(self.native):
            self._sync()
            start = time.perf_counter()
            self.step(self.x)
            self._sync()
        if record:
            self.times.append(time.perf_counter() - start)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--config", default="config/config.yaml", help="training settings (default: the paper's)")
    parser.add_argument("--nets", nargs="+", default=["mnist", "celeba"], choices=sorted(ARCHITECTURES))
    parser.add_argument("--widths", type=int, nargs="+", default=[128])
    parser.add_argument("--methods", nargs="+", default=["vae", "fisher_ae", "wae_gan"], choices=sorted(PRIORS))
    parser.add_argument("--modes", nargs="+", help="step modes (default: eager, and cuda_graph on a GPU)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the native-module rows")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per row first (>= 4 for a CUDA graph)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN time its algorithms for each shape (torch.backends.cudnn.benchmark; training does not)")
    parser.add_argument("--tf32", nargs="+", choices=["on", "off"],
                        help="float32 products on a GPU: TF32 (on) and/or IEEE (off); default: the config's training.tf32")
    args = parser.parse_args()
    keep_freed_memory()  # as training does
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    baselines = [("conv", "norm")] + ([("norm",)] if device.type == "cpu" else [])
    modes = args.modes or (["eager", "cuda_graph"] if device.type == "cuda" else ["eager"])
    config = load_config(args.config)
    arithmetic = [value == "on" for value in args.tf32] if args.tf32 else [config["training"]["tf32"]]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device={device} ({name}) torch={torch.__version__} threads={torch.get_num_threads()} batch={args.batch} "
          f"repeats={args.repeats} config={args.config}" + (" cudnn.benchmark" if args.cudnn_benchmark else ""))
    print(f"{'net':>7} {'width':>5}  {'step':<32} {'ms/step':>9} {'x VAE':>6}")
    for net in args.nets:
        for width in args.widths:
            rows = [Row(net, width, method, mode, (), config, args.batch, device, tf32)
                    for tf32 in arithmetic for method in args.methods for mode in modes]
            if not args.no_baseline:
                rows += [Row(net, width, method, "eager", native, config, args.batch, device, arithmetic[0])
                         for method in args.methods if method == "fisher_ae" for native in baselines]
            print(f"{net:>7} {width:>5}  (one pass of the encoder and decoder: "
                  f"{forward_gflop(rows[0].step.model, rows[0].x):.1f} GFLOP of convolutions and linear layers)")
            for _ in range(args.warmup):
                for row in rows:
                    row.run(record=False)
            for _ in range(args.repeats):
                for row in rows:
                    row.run()
            base = {r.tf32: statistics.median(r.times) for r in rows if r.method == "vae" and r.mode == "eager"
                    and not r.native}
            for row in rows:
                median = statistics.median(row.times)
                ratio = f"{median / base[row.tf32]:6.2f}" if row.tf32 in base else f"{'':>6}"
                mode = row.step.graph.mode if row.mode != "eager" else ""
                print(f"{net:>7} {width:>5}  {row.label:<32} {1e3 * median:9.2f} {ratio}"
                      + (f"  ({mode})" if mode and mode != "cuda_graph" else ""))


if __name__ == "__main__":
    main()
