"""The WAE paper's architectures with a per-sample normalisation."""

import pytest
import torch
from torch import nn

from fisherae.convolutions import Conv2d, ConvTranspose2d
from fisherae.group_norm import GroupNorm
from fisherae.linear import Linear
from fisherae.models import ARCHITECTURES, AutoEncoder, ConvDecoder, ConvEncoder, ModelSpec


@pytest.mark.parametrize("dataset, shape, latent", [("mnist", (1, 28, 28), 8), ("celeba", (3, 64, 64), 64)])
def test_shapes_and_default_latent_sizes(dataset, shape, latent):
    model = AutoEncoder(ModelSpec("fisher_ae", dataset, "polynomial", width=4))
    x = torch.rand(3, *shape)
    mu, logvar = model.encoder(x)
    assert mu.shape == logvar.shape == (3, latent)
    out = model.decoder(mu)
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1  # sigmoid output, pixels in [0, 1]
    assert model.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("dataset, kernel, first, last_spatial", [("mnist", 4, 128, 2), ("celeba", 5, 128, 4)])
def test_paper_width_channels_and_kernels(dataset, kernel, first, last_spatial):
    arch = ARCHITECTURES[dataset]
    enc = ConvEncoder(arch, arch.default_latent, width=128)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256, 512, 1024]
    assert all(c.kernel_size == (kernel, kernel) and c.stride == (2, 2) for c in convs)
    assert enc.head.in_features == 1024 * last_spatial**2
    dec = ConvDecoder(arch, arch.default_latent, width=128)
    assert dec.start == (1024, arch.decoder_start, arch.decoder_start)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in list(enc.modules()) + list(dec.modules()))


def test_width_scales_every_layer():
    narrow = sum(p.numel() for p in AutoEncoder(ModelSpec("vae", "mnist", width=8)).parameters())
    wide = sum(p.numel() for p in AutoEncoder(ModelSpec("vae", "mnist", width=16)).parameters())
    assert 3 < wide / narrow < 4.5  # conv weights scale with width^2


def test_wae_gan_has_a_four_layer_adversary_of_the_paper_width():
    assert AutoEncoder(ModelSpec("fisher_ae", "mnist")).adversary is None
    mnist = AutoEncoder(ModelSpec("wae_gan", "mnist", width=4)).adversary
    celeba = AutoEncoder(ModelSpec("wae_gan", "celeba", width=4)).adversary
    assert [m.out_features for m in mnist.modules() if isinstance(m, nn.Linear)] == [512, 512, 512, 1]
    assert [m.out_features for m in celeba.modules() if isinstance(m, nn.Linear)] == [1024, 1024, 1024, 1]


@pytest.mark.parametrize("method", ["fisher_ae", "vae", "wae_gan"])
@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_every_layer_with_parameters_is_fisheraes_own(method, dataset):
    """Every linear, convolution and normalisation layer is the module whose derivatives this
    project writes (exact second derivatives on backend kernels, nothing computed that is thrown
    away): a layer built from torch.nn directly would pass every other test and lose that."""
    model = AutoEncoder(ModelSpec(method, dataset, "gaussian", width=4))
    ours = (Linear, Conv2d, ConvTranspose2d, GroupNorm)
    layers = [m for m in model.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]
    assert layers and all(type(m) in ours for m in layers), sorted({type(m).__name__ for m in layers})


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="gan", dataset="mnist"), "unknown method"),
    (dict(method="vae", dataset="cifar"), "unknown dataset"),
    (dict(method="vae", dataset="mnist", prior="polynomial"), "Gaussian prior"),
])
def test_bad_specs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelSpec(**kwargs)


def test_spec_round_trips_through_a_dict():
    spec = ModelSpec("fisher_ae", "celeba", "polynomial", latent_dim=16, width=8, poly_order=4,
                     poly_normalisable=True, extra={"fisher_variant": "exact"})
    assert ModelSpec(**spec.to_dict()) == spec
    assert spec.latent == 16


def test_state_dict_keys_are_those_of_models_written_before():
    """Each group norm carries its ReLU (nn.Identity in the ReLU's old slot), so a model file
    written before (nn.Sequential(..., GroupNorm, ReLU)) still loads: the keys are unchanged."""
    keys = list(AutoEncoder(ModelSpec("fisher_ae", "mnist", "polynomial", width=2)).state_dict())
    encoder = [f"encoder.features.{i}.{p}" for i in (1, 2, 5, 6, 9, 10, 13, 14) for p in ("weight", "bias")]
    decoder = [f"decoder.{part}.{p}" for part in ("fc.0", "fc.2", "body.0", "body.1", "body.3", "body.4", "body.6")
               for p in ("weight", "bias")]
    assert keys == [*encoder, "encoder.head.weight", "encoder.head.bias", *decoder, "prior.eta"], keys


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
def test_encoder_convolutions_pad_as_tensorflow_same(dataset):
    """Each stride-2 convolution sees the input zero-padded as TensorFlow's 'SAME' does (total
    (ceil(n/2) - 1) 2 + k - n, the extra one after), whether its own padding holds a symmetric
    pad (no padded copy) or an nn.ZeroPad2d before it an asymmetric one."""
    arch = ARCHITECTURES[dataset]
    features = ConvEncoder(arch, 8, width=2).double().features
    h = torch.randn(2, arch.channels, arch.size, arch.size, dtype=torch.float64)
    convs = [i for i, module in enumerate(features) if isinstance(module, nn.Conv2d)]
    assert len(convs) == 4
    for i in convs:
        conv = features[i]
        total = max((-(-h.shape[-1] // 2) - 1) * 2 + conv.kernel_size[0] - h.shape[-1], 0)
        padded = nn.functional.pad(h, (total // 2, total - total // 2) * 2)
        expected = nn.functional.conv2d(padded, conv.weight, conv.bias, stride=2)
        out = conv(features[i - 1](h))
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        assert out.shape[-1] == -(-h.shape[-1] // 2)
        h = features[i + 1:i + 3](out)
