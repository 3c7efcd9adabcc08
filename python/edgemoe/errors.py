"""Exceptions raised by edgemoe."""


class CheckpointError(ValueError):
    """A checkpoint file or directory cannot be used: unreadable, unsafe, incomplete or inconsistent."""
