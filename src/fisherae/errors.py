"""Every error fisherae raises on purpose, under one root: ``FisherAEError``.

The command line (``fisherae.cli``) prints any of them as one line, ``fisherae <command>: error:
<message>``, and exits with code 2; the message names what is wrong and what to do. Each also
derives from the builtin exception it specialises (ValueError, RuntimeError), so code that
catches those still catches it. This module imports nothing from fisherae."""

from __future__ import annotations


class FisherAEError(Exception):
    """A failure the user can act on: a bad config, input file, data set, device or training run."""


class ConfigError(FisherAEError, ValueError):
    """A configuration that does not match the schema; the message names the key."""


class UserError(FisherAEError, RuntimeError):
    """A failure caused by input (arguments, config, data, checkpoint) that is not a schema error."""


class DataError(UserError):
    """A data set that cannot be loaded: missing files, a failed download, a bad request."""


class CheckpointError(UserError):
    """A model or checkpoint file that is missing, truncated, corrupt or of another format."""


class DeviceError(UserError):
    """A device that cannot be had: bad spec, no such GPU, or every GPU held too long."""


class TrainingDiverged(UserError):
    """A non-finite loss term or gradient during training."""


class SamplesFileError(UserError):
    """A latent samples file (written by ``sample``) that is missing, unreadable or does not fit the model."""


class NotNormalisableError(FisherAEError, ValueError):
    """An exact sample or marginal was asked of a prior whose density has an infinite integral."""


class SVGDDivergedError(FisherAEError, RuntimeError):
    """SVGD particles became non-finite or ran far beyond where they started."""


class FeaturesUnavailable(FisherAEError, RuntimeError):
    """A feature extractor that cannot be built here (e.g. Inception weights missing offline)."""
