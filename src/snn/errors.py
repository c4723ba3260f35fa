"""Typed errors. Each message names the thing, the bad value and what is allowed."""


class SnnError(Exception):
    """Base class of every error snn raises on purpose."""


class ConfigError(SnnError, ValueError):
    """A configuration file or value is not valid."""


class DataError(SnnError):
    """A dataset is missing, truncated, corrupt or of the wrong shape."""


class ModelFileError(SnnError):
    """A model file is missing, corrupt or does not match its sidecar."""


class GradientCheckError(SnnError):
    """Backpropagation disagrees with finite differences."""
