"""Exceptions that carry a message a user can act on.

Library code raises these; only the CLI's ``main`` and the add-on's operators turn them into
messages and exit codes, so every face of mcdenoise reports the same problem the same way.
"""


class McDenoiseError(Exception):
    """Base class: anything mcdenoise reports to a user without a traceback."""


class InputFileError(McDenoiseError):
    """An input file is missing, unreadable, truncated or not an EXR."""


class MissingPassError(McDenoiseError):
    """A render pass the denoiser needs (colour, or albedo/normal when required) is absent."""


class PassShapeError(McDenoiseError):
    """Passes of one frame disagree in size, or a pass has the wrong number of channels."""


class OutputError(McDenoiseError):
    """The output cannot be written (read-only directory, disk full, same path as input...)."""


class WeightsError(McDenoiseError):
    """A weights file is missing, corrupted, or made for another architecture."""


class DeviceError(McDenoiseError):
    """The requested compute device is not available."""


class Cancelled(McDenoiseError):
    """The user cancelled a long operation (raised from a progress callback)."""
