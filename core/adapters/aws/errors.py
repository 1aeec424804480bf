"""AWS errors as the ports' errors: passing faults to TransientError, the rest final and
naming the call and the resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.ports import InvalidInput, NotFound, PortError, TransientError

# Codes AWS gives to a call that may succeed if made again later.
_TRANSIENT = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound", "ResourceNotFound"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return str(exc)
    return str(response.get("Error", {}).get("Message", "")) or str(exc)


def http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def translate(exc: Exception, call: str, resource: str) -> PortError:
    """The port error of `exc`, raised by AWS call `call` on `resource`."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    where = f"{call} {resource}"
    if isinstance(exc, ClientError):
        code, message, status = error_code(exc), error_message(exc), http_status(exc)
        if code in _TRANSIENT or status >= 500 or status == 429:
            return TransientError(f"{where}: AWS is busy or failing ({code or status}): {message}")
        if code in _DENIED or status == 403:
            return PortError(
                f"{where}: permission refused ({code or status}): {message}; "
                "grant it to the credentials mmm runs with"
            )
        if code in _MISSING:
            return NotFound(f"{where}: not found ({code}): {message}")
        if code == "ModelError":  # the container answered with an error: the model refused
            return InvalidInput(f"{where}: the model refused ({code}): {message}")
        if code == "ValidationException" or code.startswith("Invalid"):
            return InvalidInput(f"{where}: refused by AWS ({code}): {message}")
        return PortError(f"{where}: {code or status}: {message}")
    if isinstance(exc, (EndpointConnectionError, ConnectionError, ReadTimeoutError)):
        return TransientError(f"{where}: AWS unreachable: {exc}")
    if isinstance(exc, BotoCoreError):
        # NoCredentialsError and friends: final, and never the credentials themselves
        return PortError(f"{where}: {type(exc).__name__}: {exc}")
    return PortError(f"{where}: {type(exc).__name__}: {exc}")


@contextmanager
def aws_call(call: str, resource: str) -> Iterator[None]:
    """Run AWS call `call` on `resource`; its errors leave as the ports' errors."""
    try:
        yield
    except PortError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3", "s3transfer")):
            raise translate(exc, call, resource) from None
        raise
