"""Time one optimiser step of the Fisher AE vs the VAE on the paper's MNIST nets.

    python benchmarks/bench_step.py [--widths 16 128] [--batch 128] [--repeats 5] [--device cpu] [--threads N]

Steps are interleaved (VAE, Fisher, VAE, Fisher, ...) after a warm-up so both see the same
machine state; prints the median seconds per step and the Fisher/VAE ratio per width."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fisherae.losses import fisher_ae_loss, vae_loss
from fisherae.models import AutoEncoder, ModelSpec


def make_step(method: str, width: int, batch: int, device: torch.device):
    torch.manual_seed(0)
    prior = "polynomial" if method == "fisher_ae" else "gaussian"
    model = AutoEncoder(ModelSpec(method, "mnist", prior, width=width)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x = torch.rand(batch, 1, 28, 28, device=device)
    objective = fisher_ae_loss if method == "fisher_ae" else vae_loss

    def step() -> float:
        start = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        objective(model.encoder, model.decoder, model.prior, x).loss.backward()
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} batch={args.batch}")
    print(f"{'width':>6} {'vae s/step':>11} {'fisher s/step':>14} {'ratio':>6}")
    for width in args.widths:
        steps = {m: make_step(m, width, args.batch, device) for m in ("vae", "fisher_ae")}
        for _ in range(args.warmup):
            for step in steps.values():
                step()
        times = {m: [] for m in steps}
        for _ in range(args.repeats):
            for method, step in steps.items():
                times[method].append(step())
        vae, fisher = statistics.median(times["vae"]), statistics.median(times["fisher_ae"])
        print(f"{width:>6} {vae:>11.4f} {fisher:>14.4f} {fisher / vae:>6.2f}")


if __name__ == "__main__":
    main()
