"""PyGithub's client, built on first use, and its errors as the ports' errors.

PyGithub is imported only when a call needs it. Its own retries and its pauses between
requests are configurable (`retry`, `seconds_between_*`): mmm keeps GitHub's pauses by
default and leaves retrying to the worker, which retries a `TransientError` with
backoff. A rate limit is transient: its message says when GitHub resets it, and its
`retry_after_s` holds the worker back until then (`Retry-After`, else
`X-RateLimit-Reset`). The token is passed to PyGithub and never kept in a message or a record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.ports import NotFound, PortError, TransientError

# Statuses GitHub answers when it is busy or down: worth asking again.
_PASSING = frozenset({408, 429, 500, 502, 503, 504})


class GitHubClient:
    """One lazily built `github.Github` for `base_url` (None: github.com)."""

    def __init__(
        self,
        token: str,
        base_url: str | None = None,
        *,
        seconds_between_requests: float | None = None,
        seconds_between_writes: float | None = None,
        timeout_s: int = 30,
    ) -> None:
        self._token = token
        self.base_url = base_url
        self._pauses = (seconds_between_requests, seconds_between_writes)
        self._timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def github(self) -> Any:
        with self._lock:
            if self._client is None:
                from github import Auth, Consts, Github

                between_requests, between_writes = self._pauses
                self._client = Github(
                    base_url=self.base_url or Consts.DEFAULT_BASE_URL,
                    auth=Auth.Token(self._token),
                    timeout=self._timeout_s,
                    retry=None,
                    seconds_between_requests=(
                        Consts.DEFAULT_SECONDS_BETWEEN_REQUESTS
                        if between_requests is None
                        else between_requests
                    ),
                    seconds_between_writes=(
                        Consts.DEFAULT_SECONDS_BETWEEN_WRITES
                        if between_writes is None
                        else between_writes
                    ),
                )
            return self._client


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return str(value)
    return None


def retry_after_s(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait before asking again, from GitHub's headers: `Retry-After` when
    given (a secondary rate limit, a 429 or a 503), else until `X-RateLimit-Reset` (an
    exhausted primary limit); None when neither is given."""
    after = _header(headers, "retry-after")
    if after is not None and after.strip().isdigit():
        return float(after.strip())
    reset = _header(headers, "x-ratelimit-reset")
    if reset is not None and reset.strip().isdigit():
        current = time.time() if now is None else now
        return float(max(0, int(reset.strip()) - int(current)))
    return None


def rate_limit_reset(headers: Any, now: float | None = None) -> str:
    """When asking again is welcome, as people read it, from GitHub's headers (the same
    choice as `retry_after_s`)."""
    after = _header(headers, "retry-after")
    if after is not None and after.strip().isdigit():
        return f"retry after {after.strip()} s"
    reset = _header(headers, "x-ratelimit-reset")
    if reset is not None and reset.strip().isdigit():
        current = time.time() if now is None else now
        at = time.strftime("%H:%M:%SZ", time.gmtime(int(reset)))
        return f"it resets at {at} (in {max(0, int(reset) - int(current))} s)"
    return "its reset time was not given"


def _limited(headers: Any) -> bool:
    """Whether GitHub's headers say a rate limit holds the request back."""
    return (
        _header(headers, "retry-after") is not None
        or _header(headers, "x-ratelimit-remaining") == "0"
    )


def _message(exc: Any) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return type(exc).__name__


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise PyGithub's and requests' failures inside as NotFound, TransientError or
    PortError, with one line that says what was being done."""
    import requests
    from github import GithubException, RateLimitExceededException

    try:
        yield
    except PortError:
        raise
    except RateLimitExceededException as exc:
        raise TransientError(
            f"GitHub's rate limit is exhausted while {what}; {rate_limit_reset(exc.headers)}; "
            "waiting on GitHub",
            retry_after_s=retry_after_s(exc.headers),
        ) from None
    except GithubException as exc:
        status = exc.status
        if status == 404:
            raise NotFound(f"GitHub: {what}: not found ({_message(exc)})") from None
        if status in (403, 429) and _limited(exc.headers):
            raise TransientError(
                f"GitHub asks to slow down while {what} (HTTP {status}); "
                f"{rate_limit_reset(exc.headers)}; waiting on GitHub",
                retry_after_s=retry_after_s(exc.headers),
            ) from None
        if status in _PASSING:
            raise TransientError(
                f"GitHub answered HTTP {status} while {what}; waiting on GitHub",
                retry_after_s=retry_after_s(exc.headers),
            ) from None
        if status == 401:
            raise PortError(
                f"GitHub refused the request while {what} (HTTP 401): check GITHUB_TOKEN"
            ) from None
        raise PortError(f"GitHub: {what}: HTTP {status}: {_message(exc)}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(
            f"GitHub did not answer while {what} ({type(exc).__name__}); waiting on GitHub"
        ) from None
