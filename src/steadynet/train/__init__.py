"""Training: one step (:mod:`.step`), the loop (:mod:`.loop`), whole runs with their run
folders (:mod:`.trainer`), their checkpoints (:mod:`.checkpoint`) and signals (:mod:`.signals`)."""

from .loop import DivergenceError, EpochResult, LoopState, StepInfo, train_loop
from .signals import Interrupted
from .step import train_step
from .trainer import RunResult, split_validation, train

__all__ = [
    "train",
    "train_loop",
    "train_step",
    "split_validation",
    "EpochResult",
    "StepInfo",
    "LoopState",
    "DivergenceError",
    "Interrupted",
    "RunResult",
]
