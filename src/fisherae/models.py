"""The WAE paper's convolutional encoders/decoders (Tolstikhin et al., 2018, App. E) for
MNIST (28x28x1) and CelebA (64x64x3), WAE-GAN's latent adversary, and the model container saved
to checkpoints.

BatchNorm in training mode couples the samples of a batch, which makes sample i's
gradient terms of eq. 11 depend on sample j. We use GroupNorm, which normalises each
sample on its own (``fisherae.group_norm``: PyTorch's, with a compiled second derivative on the CPU)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from fisherae.convolutions import Conv2d, ConvTranspose2d
from fisherae.group_norm import GroupNorm
from fisherae.image_shapes import IMAGE_SHAPES
from fisherae.linear import Linear
from fisherae.priors import build_prior

METHODS = ("fisher_ae", "vae", "wae_gan")


@dataclass(frozen=True)
class Architecture:
    """Shape of one dataset's nets: its images (``fisherae.image_shapes``), kernel size, decoder
    start size, the adversary's width and the default latent dimension."""

    dataset: str
    kernel: int
    decoder_start: int
    adversary_hidden: int
    default_latent: int

    @property
    def channels(self) -> int:
        return IMAGE_SHAPES[self.dataset][0]

    @property
    def size(self) -> int:
        return IMAGE_SHAPES[self.dataset][1]


ARCHITECTURES = {
    "mnist": Architecture("mnist", kernel=4, decoder_start=7, adversary_hidden=512, default_latent=8),
    "celeba": Architecture("celeba", kernel=5, decoder_start=8, adversary_hidden=1024, default_latent=64),
}


def _norm_relu(channels: int) -> list[nn.Module]:
    """Per-sample normalisation (no batch coupling), then ReLU: up to 32 groups of at least 8
    channels, so a group never normalises a single value away (1x1 maps in narrow nets). The ReLU
    runs inside the group-norm layer (``fisherae.group_norm``: its mask folded into the layer's
    compiled derivatives); nn.Identity holds the ReLU's place, so the state dict's keys stay those
    of nn.Sequential(..., GroupNorm, ReLU) (the published models')."""
    groups = math.gcd(channels, 32)
    while groups > 1 and channels // groups < 8:
        groups //= 2
    return [GroupNorm(groups, channels, relu=True), nn.Identity()]


def _same_padding(size: int, kernel: int, stride: int = 2) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding (used by the WAE code), before and after: output size ceil(size/stride)."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


def _conv_block(c_in: int, c_out: int, kernel: int, size: int) -> list[nn.Module]:
    """A stride-2 'SAME' convolution, then group norm and ReLU. A symmetric padding is the
    convolution's own (no padded copy of the map, nor its slices in the derivatives: about 1 % of
    a Fisher step, BENCHMARKS.md), with nn.Identity in the place of the nn.ZeroPad2d an asymmetric
    one needs, so the state dict's keys are the same either way."""
    before, after = _same_padding(size, kernel)
    symmetric = before == after
    pad = nn.Identity() if symmetric else nn.ZeroPad2d((before, after, before, after))
    return [pad, Conv2d(c_in, c_out, kernel, stride=2, padding=before if symmetric else 0), *_norm_relu(c_out)]


def _deconv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    pad = (kernel - 1) // 2
    out_pad = 2 + 2 * pad - kernel  # exactly doubles the size for k = 4 and k = 5
    return [ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=pad, output_padding=out_pad),
            *_norm_relu(c_out)]


class ConvEncoder(nn.Module):
    """x -> (mu, logvar): four stride-2 'SAME' convs with width*(1, 2, 4, 8) channels
    (MNIST 28 -> 14 -> 7 -> 4 -> 2, CelebA 64 -> 32 -> 16 -> 8 -> 4), then FC."""

    def __init__(self, arch: Architecture, latent_dim: int, width: int = 128):
        super().__init__()
        chans = [arch.channels] + [width * m for m in (1, 2, 4, 8)]
        sizes = [arch.size]
        for _ in chans[1:]:
            sizes.append(math.ceil(sizes[-1] / 2))
        layers = [m for c_in, c_out, size in zip(chans, chans[1:], sizes)
                  for m in _conv_block(c_in, c_out, arch.kernel, size)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_features = self.features(torch.zeros(1, arch.channels, arch.size, arch.size)).shape[1]
        self.head = Linear(n_features, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x)).chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """z -> f(z) in [0, 1]: FC to start x start x 8*width, stride-2 transposed convs
    halving the channels, a last stride-1 conv (odd kernel, for 'same' padding) to the
    image channels, sigmoid."""

    def __init__(self, arch: Architecture, latent_dim: int, width: int = 128):
        super().__init__()
        n_up = int(math.log2(arch.size // arch.decoder_start))
        chans = [width * 8 // 2**i for i in range(n_up + 1)]
        self.start = (chans[0], arch.decoder_start, arch.decoder_start)
        self.fc = nn.Sequential(Linear(latent_dim, math.prod(self.start)), nn.Unflatten(1, self.start),
                                *_norm_relu(chans[0]))
        layers = [m for c_in, c_out in zip(chans, chans[1:]) for m in _deconv_block(c_in, c_out, arch.kernel)]
        self.body = nn.Sequential(*layers, Conv2d(chans[-1], arch.channels, arch.kernel | 1, padding="same"),
                                  nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.fc(z))


class LatentAdversary(nn.Module):
    """WAE-GAN's latent discriminator: 4 fully connected layers, ReLU, one logit out."""

    def __init__(self, latent_dim: int, hidden: int = 512):
        super().__init__()
        self.net = nn.Sequential(
            Linear(latent_dim, hidden), nn.ReLU(),
            Linear(hidden, hidden), nn.ReLU(),
            Linear(hidden, hidden), nn.ReLU(),
            Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a trained model from its checkpoint."""

    method: str
    dataset: str
    prior: str = "gaussian"
    latent_dim: int | None = None
    width: int = 128
    poly_order: int = 5
    poly_normalisable: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: expected one of {METHODS}")
        if self.dataset not in ARCHITECTURES:
            raise ValueError(f"unknown dataset {self.dataset!r}: expected one of {tuple(ARCHITECTURES)}")
        if self.method != "fisher_ae" and self.prior != "gaussian":
            raise ValueError(f"{self.method} uses the Gaussian prior (the paper's baselines); got prior {self.prior!r}")

    @property
    def latent(self) -> int:
        return self.latent_dim or ARCHITECTURES[self.dataset].default_latent

    def to_dict(self) -> dict:
        return asdict(self)


class AutoEncoder(nn.Module):
    """Encoder q_phi(z|x), decoder f_theta(z), prior p_eta(z) and, for WAE-GAN, the latent adversary."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        arch = ARCHITECTURES[spec.dataset]
        self.spec = spec
        self.encoder = ConvEncoder(arch, spec.latent, spec.width)
        self.decoder = ConvDecoder(arch, spec.latent, spec.width)
        self.prior = build_prior(spec.prior, spec.latent, spec.poly_order, spec.poly_normalisable)
        self.adversary = LatentAdversary(spec.latent, arch.adversary_hidden) if spec.method == "wae_gan" else None

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean mu(x), used for all evaluations."""
        return self.encoder(x)[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """f(mu(x))."""
        return self.decoder(self.encode_mean(x))
