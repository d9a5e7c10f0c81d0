"""``latent``: t-SNE + k-means NMI of noisy MNIST latents behind Figures 3 and 4
(``fisherae.latent``; docs/cli.md)."""

from __future__ import annotations

from fisherae.commands.common import (add_model_arguments, load_config_and_model, load_test_split, require_mnist,
                                      write_csv)
from fisherae.commands.registry import command
from fisherae.errors import ConfigError, UserError


@command("latent", "t-SNE + k-means NMI of noisy MNIST latents (Figures 3 and 4): embeddings NPZ and NMI CSV")
def setup_latent(parser):
    add_model_arguments(parser)
    parser.add_argument("--out-embedding", help="NPZ: embeddings [sigma2, tsne seed, n, 2], labels (Figure 4)")
    parser.add_argument("--all-test-points", action="store_true",
                        help="embed the whole test split instead of its first evaluation.latent.n_points images")
    parser.add_argument("--out-nmi", required=True, help="CSV: dataset, model, seed, sigma2, tsne_seed, nmi")
    return run_latent


def run_latent(args) -> None:
    from fisherae.evaluation import first_images
    from fisherae.latent import NMI_COLUMNS, latent_robustness, write_embeddings

    config, model = load_config_and_model(args)
    require_mnist(args, "to score clusters, Figures 3-4 use MNIST")
    settings = config["evaluation"]["latent"]
    data = load_test_split(config, args.dataset)
    n_points = len(data) if args.all_test_points else settings["n_points"]
    if n_points > len(data):
        raise ConfigError(f"{args.config}: evaluation.latent.n_points = {n_points}, but the "
                          f"{args.dataset} test split has {len(data)} images; lower n_points")
    images, labels = first_images(data, n_points)
    try:  # on the CPU, holding no GPU: t-SNE and k-means are CPU work, the encoder pass a fifth (BENCHMARKS.md)
        table, embeddings = latent_robustness(
            model, images, labels, settings["sigma2"], settings["seeds"], settings["n_clusters"],
            config["evaluation"]["noise_sweep"]["noise_seed"], settings["tsne_perplexity"],
            config["evaluation"]["noise_sweep"]["batch_size"], "cpu", n_jobs=config["training"]["threads"])
    except ValueError as err:
        raise UserError(f"checkpoint {args.checkpoint}: {err}") from err
    if args.out_embedding:
        write_embeddings(args.out_embedding, embeddings, labels, settings["sigma2"], settings["seeds"], args.dataset,
                         args.model, args.seed)
    write_csv(table.assign(dataset=args.dataset, model=args.model, seed=args.seed)[NMI_COLUMNS], args.out_nmi)
    print(args.out_nmi)
