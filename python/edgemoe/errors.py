"""Exceptions and warnings raised by edgemoe."""


class CheckpointError(ValueError):
    """A checkpoint file or directory cannot be used: unreadable, unsafe, incomplete or inconsistent."""


class UnsafeCheckpointError(CheckpointError):
    """The file asks for something a checkpoint never needs (a global outside the allow-list, state set
    on a global, a pickled module): it may carry code, and nothing of it is used."""


class InputRangeWarning(UserWarning):
    """Input values that a backend cannot represent exactly were clipped or rounded (emu, fpga: the
    accelerator reads 8-bit pixels)."""


class ConfigWarning(UserWarning):
    """A hyper-parameter the checkpoint cannot confirm was guessed, or a config file next to it was ignored."""


class BoardLimitWarning(UserWarning):
    """A model runs on ``emu`` but no FPGA board build's maxima can hold it (edgemoe.boards)."""


class AspectRatioWarning(UserWarning):
    """``preprocess`` stretched an image: M3ViT resizes to the model's input size without keeping the
    aspect ratio, so a photo of another shape is distorted (crop it first to avoid that)."""
