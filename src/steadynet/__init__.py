"""steadynet: a from-scratch NumPy multi-layer perceptron that trains stably and tells you why
a network diverges.

The public API::

    import steadynet
    run = steadynet.train(hidden=(30,), epochs=10)        # the seed's 784-30-10 network
    model = run.model                                     # a steadynet.MLP
    model.predict(X)                                      # (n,) class indices
    steadynet.load("runs/seed")                           # a run folder or model.npz
"""

from ._version import __version__
from .config import TrainConfig  # noqa: E402
from .data import Dataset, load_data  # noqa: E402
from .diagnostics import check_gradients, check_model_gradients, diagnose, doctor  # noqa: E402
from .errors import (  # noqa: E402
    ChecksumError,
    ConfigError,
    DataFormatError,
    DownloadError,
    ModelFileError,
    NonFiniteError,
    SteadynetError,
)
from .model import MLP  # noqa: E402
from .persistence import load_model as load  # noqa: E402
from .persistence import save_model as save
from .pictures import predict_images, preprocess_digit  # noqa: E402
from .train import train  # noqa: E402
from .tune import tune  # noqa: E402  (Optuna is imported only when a search runs)

__all__ = [
    "MLP",
    "TrainConfig",
    "Dataset",
    "train",
    "load",
    "save",
    "load_data",
    "check_gradients",
    "check_model_gradients",
    "diagnose",
    "doctor",
    "tune",
    "predict_images",
    "preprocess_digit",
    "SteadynetError",
    "ConfigError",
    "DataFormatError",
    "ChecksumError",
    "DownloadError",
    "ModelFileError",
    "NonFiniteError",
    "__version__",
]
