"""edgemoe: multi-task mixture-of-experts vision transformers (M3ViT) on CPUs and FPGAs, from Python."""
from ._version import __version__
from .config import ModelConfig, TASK_ORDER
from .errors import (AspectRatioWarning, BoardLimitWarning, CheckpointError, ConfigWarning, InputRangeWarning,
                     UnsafeCheckpointError)
from .imaging import postprocess, preprocess
from .info import info
from .model import Model
from .evaluation import evaluate
from .trace import Trace, compare
from . import data, reference

__all__ = ["Model", "ModelConfig", "CheckpointError", "UnsafeCheckpointError", "InputRangeWarning", "AspectRatioWarning",
           "BoardLimitWarning", "ConfigWarning", "preprocess", "postprocess", "reference", "info", "evaluate", "compare", "Trace", "data",
           "TASK_ORDER", "__version__"]
