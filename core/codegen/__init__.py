"""Code generation for the consuming repository: client, IaC YAML and golden tests."""

from core.codegen.render import (
    GATEWAY_ENV,
    CodegenContext,
    endpoint_module,
    managed_paths,
    render_change,
    render_files,
)

__all__ = [
    "GATEWAY_ENV",
    "CodegenContext",
    "endpoint_module",
    "managed_paths",
    "render_change",
    "render_files",
]
