"""The Comet model registry as mmm's Registry (comet_ml's REST `API`, imported lazily)."""

from core.adapters.comet.registry import CometRegistry

__all__ = ["CometRegistry"]
