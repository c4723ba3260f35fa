"""Typed errors. Each message names the thing, the bad value and what is allowed."""


class SnnError(Exception):
    """Base class of every error snn raises on purpose."""


class ConfigError(SnnError, ValueError):
    """A configuration file or value is not valid."""


class DataError(SnnError):
    """A dataset is missing, truncated, corrupt or of the wrong shape."""


class ModelFileError(SnnError):
    """A model file is missing, corrupt or does not match its sidecar."""


class ExportError(SnnError):
    """A model cannot be written in the asked format, or the file to write exists."""


class CheckpointError(SnnError):
    """A checkpoint is missing, tampered with, or names a file it may not."""


class RunFolderError(SnnError):
    """A run folder is not one, is in use by another run, or holds a complete run."""


class SpaceError(ConfigError):
    """A search-space file is not valid."""


class StoreError(SnnError):
    """The state store cannot be reached, or went away during a run."""


class FileKindError(SnnError):
    """A path names something that is not a regular file (a device, a FIFO, a socket, a folder) where one is needed."""


class DivergedError(SnnError, ValueError):
    """The cost stopped being a number: the training diverged (a ValueError, as scikit-learn expects of a fit)."""
