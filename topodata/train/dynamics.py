"""Training dynamics now live in :mod:`topodata.nn.dynamics`; this path re-exports them."""

from ..nn.dynamics import DynamicsRecorder, TrainingDynamics, batch_statistics, dynamics_from_features  # noqa: F401

__all__ = ["TrainingDynamics", "DynamicsRecorder", "batch_statistics", "dynamics_from_features"]
