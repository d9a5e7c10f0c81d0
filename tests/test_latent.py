"""Latent robustness (Figures 3-4): t-SNE, k-means on the embedding, NMI against labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fisherae.latent import cluster_nmi, encode_noisy, latent_robustness, read_embeddings, tsne_embed, write_embeddings
from fisherae.models import AutoEncoder, ModelSpec



def separated_clusters(n_per=50, k=3, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n_per)
    centres = 20.0 * np.eye(k, dim)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


@pytest.mark.parametrize("backend", ["opentsne", "sklearn"])
def test_separated_clusters_give_nmi_one(backend):
    x, labels = separated_clusters()
    embedding = tsne_embed(x, seed=0, perplexity=20, n_iter=300, backend=backend)
    assert embedding.shape == (150, 2) and embedding.dtype == np.float32
    assert cluster_nmi(embedding, labels, n_clusters=3, seed=0) > 0.95


def test_random_labels_give_nmi_near_zero():
    x, _ = separated_clusters()
    random_labels = np.random.default_rng(1).integers(3, size=len(x))
    embedding = tsne_embed(x, seed=0, perplexity=20, n_iter=300)
    assert cluster_nmi(embedding, random_labels, n_clusters=3, seed=0) < 0.1


def test_tsne_is_deterministic_per_seed_and_caps_perplexity():
    x, _ = separated_clusters(n_per=10)
    a, b = tsne_embed(x, seed=3, n_iter=260), tsne_embed(x, seed=3, n_iter=260)  # perplexity 30 > (30 - 1) / 3
    assert np.array_equal(a, b)
    assert not np.array_equal(a, tsne_embed(x, seed=4, n_iter=260))
    with pytest.raises(ValueError, match="backend"):
        tsne_embed(x, seed=0, backend="umap")
    with pytest.raises(ValueError, match="early-exaggeration"):
        tsne_embed(x, seed=0, n_iter=250)


def test_latent_robustness_shapes_and_noise():
    torch.manual_seed(0)
    model = AutoEncoder(ModelSpec("vae", "mnist", latent_dim=3, width=4)).eval()
    images = torch.rand(30, 1, 28, 28)
    labels = np.arange(30) % 3
    clean = encode_noisy(model, images, 0.0, noise_seed=0, batch_size=8)
    with torch.no_grad():
        assert np.allclose(clean, model.encode_mean(images).double().numpy(), atol=1e-6)
    assert not np.allclose(clean, encode_noisy(model, images, 0.5, noise_seed=0, batch_size=8))
    table, embeddings = latent_robustness(model, images, labels, [0.0, 0.5], [0, 1], n_clusters=3, noise_seed=0,
                                          batch_size=8, n_iter=260)
    assert list(table.columns) == ["sigma2", "tsne_seed", "nmi"] and len(table) == 4
    assert embeddings.shape == (2, 2, 30, 2) and table["nmi"].between(0, 1).all()
    again, _ = latent_robustness(model, images, labels, [0.0, 0.5], [0, 1], n_clusters=3, noise_seed=0,
                                 batch_size=8, n_iter=260)
    assert table.equals(again)


def test_embeddings_file_round_trip(tmp_path):
    """`latent` writes the file Figure 4 reads through one writer and one reader."""
    embeddings = np.arange(2 * 3 * 5 * 2, dtype=np.float32).reshape(2, 3, 5, 2)
    labels = np.array([0, 1, 2, 3, 4])
    path = str(tmp_path / "vae.npz")
    write_embeddings(path, embeddings, labels, [0.0, 0.5], [1, 2, 3], "mnist", "vae", 7)
    (read,) = read_embeddings([path])
    assert np.array_equal(read["embeddings"], embeddings) and np.array_equal(read["labels"], labels)
    assert read["sigma2"].tolist() == [0.0, 0.5] and read["tsne_seeds"].tolist() == [1, 2, 3]
    assert (read["dataset"], read["model"], read["seed"]) == ("mnist", "vae", 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.npz"]  # written atomically, no temp file left
