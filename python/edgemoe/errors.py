"""Exceptions and warnings raised by edgemoe."""


class CheckpointError(ValueError):
    """A checkpoint file or directory cannot be used: unreadable, unsafe, incomplete or inconsistent."""


class UnsafeCheckpointError(CheckpointError):
    """The file asks for something a checkpoint never needs (a global outside the allow-list, state set
    on a global, a pickled module): it may carry code, and nothing of it is used."""


class InputRangeWarning(UserWarning):
    """Input values that a backend cannot represent exactly were clipped or rounded (emu, fpga: the
    accelerator reads 8-bit pixels)."""
