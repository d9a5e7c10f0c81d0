"""The linear layers' matrix products in both orientations on the CPU: a @ b as it is and as
(b^T a^T)^T, and which one ``fisherae.linear`` computes (its rule, ``transposes``, was measured on
one box; this script checks it on another).

    python benchmarks/bench_products.py --threads 1

For each linear layer of the nets (the encoder's head, the decoder's first layer; MNIST and
CelebA, at each ``--widths``, batch ``--batch``), its three products (forward, input gradient,
weight gradient) with their shapes, milliseconds (median of ``--repeats``) each way, the faster,
and the orientation the rule picks (marked ``!`` where it picks the slower by more than 10 %).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fisherae.linear import transposes
from fisherae.models import ARCHITECTURES, AutoEncoder, ModelSpec


def timed(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def products(n_in: int, n_out: int, batch: int) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """The (a, b) shapes of a linear layer's products: y = x W^T, g_x = g W, g_W^T = x^T g."""
    return {"forward": ((batch, n_in), (n_in, n_out)), "input gradient": ((batch, n_out), (n_out, n_in)),
            "weight gradient": ((n_in, batch), (batch, n_out))}


def layers(net: str, width: int) -> dict[str, tuple[int, int]]:
    """(in, out) of the encoder's head and the decoder's first layer of ``net`` at ``width``."""
    model = AutoEncoder(ModelSpec("vae", net, "gaussian", width=width))
    head, fc = model.encoder.head, model.decoder.fc[0]
    return {"encoder head": (head.in_features, head.out_features), "decoder fc": (fc.in_features, fc.out_features)}


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--nets", nargs="+", default=sorted(ARCHITECTURES), choices=sorted(ARCHITECTURES))
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{'net':6} {'width':>5} {'layer':13} {'product':16} {'[m, k] x [k, n]':>22} {'as is ms':>9} "
          f"{'transposed':>10} {'rule':>10}")
    for net in args.nets:
        for width in args.widths:
            for layer, (n_in, n_out) in layers(net, width).items():
                for name, (a_shape, b_shape) in products(n_in, n_out, args.batch).items():
                    a, b = torch.randn(a_shape), torch.randn(b_shape)
                    plain = timed(lambda: torch.mm(a, b), args.repeats)
                    turned = timed(lambda: torch.mm(b.t(), a.t()).t().contiguous(), args.repeats)
                    rule = transposes(a_shape[0], b_shape[1], a.device)
                    picked, other = (turned, plain) if rule else (plain, turned)
                    flag = " !" if picked > 1.1 * other else ""
                    shape = f"{list(a_shape)} x {list(b_shape)}"
                    print(f"{net:6} {width:5d} {layer:13} {name:16} {shape:>22} {plain:9.3f} {turned:10.3f} "
                          f"{'transposed' if rule else 'as is':>10}{flag}")


if __name__ == "__main__":
    main()
