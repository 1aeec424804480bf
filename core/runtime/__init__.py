"""The standard model runtime: loaders per library and the golden-data check."""

from core.runtime.golden import (
    DEFAULT_TOLERANCE,
    GoldenCase,
    GoldenReport,
    Mismatch,
    check_golden,
    read_golden,
)
from core.runtime.loaders import (
    FORMATS,
    LoadedModel,
    ModelFailed,
    Predictor,
    clear_cache,
    detect_format,
    load_model,
    load_model_cached,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "FORMATS",
    "GoldenCase",
    "GoldenReport",
    "LoadedModel",
    "Mismatch",
    "ModelFailed",
    "Predictor",
    "check_golden",
    "clear_cache",
    "detect_format",
    "load_model",
    "load_model_cached",
    "read_golden",
]
