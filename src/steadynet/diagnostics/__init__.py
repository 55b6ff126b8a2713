"""Diagnostics: is it the backprop, the data or the settings?

- :func:`diagnose`: the user's own network as they wrote it, forward pass, loss, backprop,
  initialisation and first step, every mistake the numbers show, in fix order;
- :func:`check_gradients` / :func:`check_model_gradients`: gradient check with a diagnosis of
  each failing tensor (sign, batch sum, transpose, missing, partial, wrong);
- :class:`HealthMonitor`: per-layer norms, update ratios and saturation during training;
- :class:`ExplosionDetector` (the training loop's guard), :func:`explain_divergence`: stop at
  the first exploding value and rank its likely causes;
- :func:`doctor`: pre-training checks with a verdict.
"""

from .diagnose import Diagnosis, Finding, diagnose
from .divergence import ExplosionDetector, explain_divergence, format_causes, rank_causes
from .doctor import DoctorResult, doctor
from .gradcheck import GradCheckResult, TensorCheck, check_gradients, check_model_gradients
from .health import HealthMonitor

__all__ = [
    "diagnose",
    "Diagnosis",
    "Finding",
    "check_gradients",
    "check_model_gradients",
    "GradCheckResult",
    "TensorCheck",
    "HealthMonitor",
    "ExplosionDetector",
    "explain_divergence",
    "rank_causes",
    "format_causes",
    "doctor",
    "DoctorResult",
]
