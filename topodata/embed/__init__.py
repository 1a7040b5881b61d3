"""The embed stage: proxy training and feature extraction, built on :mod:`topodata.nn`.

``embed(dataset)`` trains a proxy model (all of the training split or a seeded fraction) and
returns the penultimate-layer features of every sample; ``embed_cached(spec)`` does it once per
configuration and loads the stored result afterwards. ``build_model`` and ``MODELS`` are
re-exported from :mod:`topodata.nn.models`.

>>> from topodata.embed import build_model, embed, embed_cached, EmbedResult
"""

from ..nn.models import MODELS, FeatureModel, build_model, init_weights
from .proxy import DEFAULT_LENGTH, EmbedResult, default_epochs, embed, embed_cached, proxy_subset

__all__ = ["build_model", "embed", "embed_cached", "EmbedResult", "FeatureModel", "MODELS", "default_epochs",
           "proxy_subset", "init_weights", "DEFAULT_LENGTH"]
