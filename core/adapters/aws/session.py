"""boto3 clients per service and region, made on first use and shared by the adapters."""

from __future__ import annotations

import re
import threading
from typing import Any

from core.ports import InvalidInput

# botocore's own retries stay short: a throttled or failing call becomes a TransientError
# and the worker retries it later, without holding its lease meanwhile.
_RETRIES = {"max_attempts": 2, "mode": "standard"}
_CONNECT_TIMEOUT_S = 5
_READ_TIMEOUT_S = 30
# An invocation may take up to SageMaker's own limit of 60 s (an LLM's answer), and is sent
# once: a read timeout must not send a slow model's request a second time.
_INVOCATION = {"read_timeout": 70, "retries": {"total_max_attempts": 1, "mode": "standard"}}
REGION_PATTERN = "[a-z]{2}(?:-[a-z]+)+-[0-9]+"  # us-east-1, us-gov-west-1, ap-southeast-2


class AwsClients:
    """Clients from boto3's standard credential chain (environment, profile, role).

    `endpoint_url` sends every service to one URL (a moto server, LocalStack); None is AWS.
    """

    def __init__(self, home_region: str, endpoint_url: str | None = None) -> None:
        self.home_region = home_region
        self.endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        self._session: Any = None
        self._lock = threading.Lock()

    def client(self, service: str, region: str | None = None) -> Any:
        """The client of `service` in `region` (the home region by default)."""
        key = (service, region or self.home_region)
        if not re.fullmatch(REGION_PATTERN, key[1]):
            raise InvalidInput(
                f"{key[1]!r} is not an AWS region: name the deployment's regions (--region, "
                f"`regions:` of the deployment file, or defaults.regions in mmm.yaml, e.g. "
                f"[{self.home_region}])"
            )
        with self._lock:
            if key not in self._clients:
                import boto3
                from botocore.config import Config

                if self._session is None:
                    self._session = boto3.session.Session()
                options: dict[str, Any] = {"retries": _RETRIES, "read_timeout": _READ_TIMEOUT_S}
                if service == "sagemaker-runtime":
                    options.update(_INVOCATION)
                config = Config(connect_timeout=_CONNECT_TIMEOUT_S, **options)
                self._clients[key] = self._session.client(
                    service, region_name=key[1], endpoint_url=self.endpoint_url, config=config
                )
            return self._clients[key]
