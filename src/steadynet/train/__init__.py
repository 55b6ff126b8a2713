"""Training: the loop (:mod:`.loop`) and whole runs with their run folders (:mod:`.trainer`)."""

from .loop import DivergenceError, EpochResult, LoopState, StepInfo, train_loop
from .trainer import Interrupted, RunResult, split_validation, train

__all__ = [
    "train",
    "train_loop",
    "split_validation",
    "EpochResult",
    "StepInfo",
    "LoopState",
    "DivergenceError",
    "Interrupted",
    "RunResult",
]
