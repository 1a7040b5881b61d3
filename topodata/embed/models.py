"""The model zoo now lives in :mod:`topodata.nn.models`; this path re-exports it."""

from ..nn.models import MODELS, FeatureModel, build_model, init_weights  # noqa: F401

__all__ = ["MODELS", "FeatureModel", "build_model", "init_weights"]
