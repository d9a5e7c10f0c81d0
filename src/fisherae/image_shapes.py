"""The image shape (C, H, W) of each data set: MNIST 28x28x1, CelebA 64x64x3 (the WAE crop).
Read by the data loaders (``fisherae.data``) and by the nets built for them (``fisherae.models``);
imports nothing from fisherae."""

IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {"mnist": (1, 28, 28), "celeba": (3, 64, 64)}
