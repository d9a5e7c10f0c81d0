"""How far the CUDA-graph training step is from the eager one, step after step (GPU only).

    python benchmarks/graph_vs_eager.py [--methods vae fisher_ae] [--steps 8]

Three copies of one model (MNIST nets, width 4, d = 3, K = 4 normalisable prior, Adam lr 1e-3)
take the same batches and draws: eager with PyTorch's default Adam (capturable=False), eager
with capturable Adam (what training uses on a GPU), and replayed from a CUDA graph (3 warm-up
steps, then capture; a smaller batch runs eagerly). Printed per step: the largest absolute
difference of the step's output (its loss terms and gradient norms) from the eager capturable
copy. cuDNN is put in deterministic mode; float32 products in TF32 (as training's default) or,
with ``--tf32 off``, IEEE."""

from __future__ import annotations

import argparse

import torch

from fisherae.config import validate_config
from fisherae.devices import float32_products, use_tf32
from fisherae.training import TrainingStep, model_spec

N_SAMPLES = {"fisher_ae": 2, "vae": 1}  # L, the draws of z per image


def copy_of(method: str, mode: str, capturable: bool) -> TrainingStep:
    prior = "polynomial" if method == "fisher_ae" else "gaussian"
    config = validate_config({
        "seeds": [0], "datasets": {"mnist": {"source": "embedded", "width": 4, "latent_dim": 3}},
        "models": {method: {"method": method, "prior": prior}},
        "training": {"lr": 1e-3, "poly_order": 4, "poly_normalisable": True, "n_samples": N_SAMPLES[method],
                     "step_mode": mode}})
    torch.manual_seed(0)
    step = TrainingStep(model_spec(config, "mnist", method), config["training"], torch.device("cuda"))
    for optimiser in step.optimisers.values():
        for group in optimiser.param_groups:
            group["capturable"] = capturable
    step.generator.manual_seed(0)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--methods", nargs="+", default=["vae", "fisher_ae"], choices=sorted(N_SAMPLES))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--tf32", choices=["on", "off"], default="on", help="float32 products (training.tf32)")
    args = parser.parse_args()
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    use_tf32(args.tf32 == "on")
    gen = torch.Generator().manual_seed(1)
    sizes = [16] * (args.steps - 2) + [9, 16]
    batches = [torch.rand(n, 1, 28, 28, generator=gen).cuda() for n in sizes]
    print(f"device={torch.cuda.get_device_name()} torch={torch.__version__} float32 products: {float32_products()}")
    for method in args.methods:
        copies = {"eager, default Adam": copy_of(method, "eager", False),
                  "eager, capturable Adam": copy_of(method, "eager", True),
                  "CUDA graph": copy_of(method, "cuda_graph", True)}
        rows = {name: [step(x).clone() for x in batches] for name, step in copies.items()}
        reference = rows["eager, capturable Adam"]
        print(f"{method} (graph mode: {copies['CUDA graph'].graph.mode}); max |difference| per step from the "
              "eager step with capturable Adam:")
        for name in ("eager, default Adam", "CUDA graph"):
            print(f"  {name:<22}", " ".join(f"{float((a - b).abs().max()):.2e}" for a, b in zip(rows[name], reference)))


if __name__ == "__main__":
    main()
