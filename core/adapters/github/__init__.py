"""GitHub pull requests as mmm's CodeHost (PyGithub, imported lazily)."""

from core.adapters.github.codehost import GitHubCodeHost

__all__ = ["GitHubCodeHost"]
