"""SageMaker's data capture, turned on for a shadow test and read back as its pairs.

With a shadow variant, mmm asks SageMaker to capture every request's input and output
(`capture_config`). SageMaker writes what each variant answered, production's and the
shadow's apart, as JSON Lines under
`s3://<prefix>-captures-<region>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`, one
line a request, in its documented format:

    {"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT", "data",
                                       "encoding": "JSON" | "BASE64" | "CSV"},
                     "endpointOutput": {... the same, "mode": "OUTPUT"}},
     "eventMetadata": {"eventId", "inferenceId", "inferenceTime"}, "eventVersion": "0"}

The two answers to one request are tied only by the caller's `InferenceId` (`replay` sets
one per input, the same when it is replayed again): records without one cannot be paired
and are skipped, so a live shadow test counts only the requests whose callers set it. A request of several instances
gives one pair per instance (`<inferenceId>#<index>`), as the local gateway's pairs.

Production's folder keeps growing, shadow test after shadow test, while the shadow's is
emptied when its test starts (core.steps.shadow.clear_captures). So production is read only
from the hour before the shadow's first file on: S3 lists keys in order, and `StartAfter`
skips the older ones without listing, let alone downloading, them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.adapters.aws.errors import aws_call
from core.adapters.aws.s3 import bucket_named, list_keys
from core.ports import CapturedPair, InvalidInput, PortError

PURPOSE = "captures"
JSON_TYPES = ["application/json"]
_HOUR = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")
_HOUR_PATH = "%Y/%m/%d/%H/"

# ---------------------------------------------------------------- where


def bucket_name(prefix: str, region: str) -> str:
    """The region's captures bucket, named as every bucket of mmm (core.adapters.aws.s3)."""
    return bucket_named(prefix, PURPOSE, region)


def capture_config(prefix: str, region: str) -> dict[str, Any]:
    """The DataCaptureConfig of an endpoint config with a shadow: every request, both ways."""
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket_name(prefix, region)}/",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": JSON_TYPES},
    }


def variant_prefix(endpoint: str, variant: str) -> str:
    return f"{endpoint}/{variant}/"


def start_after(prefix: str, first_key: str) -> str:
    """The `StartAfter` of a production listing: the hour before the shadow's first file
    (a request's two records may land either side of an hour's turn)."""
    match = _HOUR.search(first_key)
    if match is None:
        return prefix  # not SageMaker's layout: read everything rather than miss pairs
    year, month, day, hour = (int(g) for g in match.groups())
    before = datetime(year, month, day, hour) - timedelta(hours=1)
    return prefix + before.strftime(_HOUR_PATH)


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Payload:
    """One side of a captured request, decoded: `value`, or `error` when it cannot be."""

    value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Record:
    """One line of a capture file."""

    inference_id: str | None
    input: Payload
    output: Payload


def decode(part: Any) -> Payload:
    """The body SageMaker captured (`endpointInput` or `endpointOutput`), as JSON values."""
    if not isinstance(part, dict) or "data" not in part:
        return Payload(error="nothing was captured")
    data, encoding = part["data"], part.get("encoding", "JSON")
    kind = str(part.get("observedContentType", ""))
    try:
        if encoding == "BASE64":
            data = base64.b64decode(data, validate=True).decode()
            encoding = "CSV" if "csv" in kind else "JSON"
        if encoding == "CSV":
            return Payload(_csv(str(data)))
        return Payload(json.loads(data) if isinstance(data, str) else data)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        return Payload(error=f"captured {kind or 'data'} cannot be read: {exc}")


def _csv(text: str) -> list[Any]:
    """Rows of cells; a row of one cell is that cell (one prediction a line)."""
    rows = [[_cell(x) for x in line.split(",")] for line in text.splitlines() if line.strip()]
    return [row[0] if len(row) == 1 else row for row in rows]


def _cell(text: str) -> float | str:
    """A number, or the text (a label) when it is none."""
    try:
        return float(text)
    except ValueError:
        return text.strip()


def parse(line: bytes, where: str) -> Record:
    """One line of a capture file; PortError naming `where` for a line of anything else."""
    try:
        doc = json.loads(line)
        data, meta = doc["captureData"], doc.get("eventMetadata") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        data = meta = None
    if not isinstance(data, dict) or not isinstance(meta, dict):
        raise PortError(f"{where}: not a SageMaker capture record")
    inference_id = meta.get("inferenceId")
    return Record(
        inference_id=str(inference_id) if inference_id else None,
        input=decode(data.get("endpointInput")),
        output=decode(data.get("endpointOutput")),
    )


def instances(payload: Payload) -> list[Any]:
    """The inputs of a request, as the gateway takes them (core.gateway.client.as_body);
    what cannot be read stays one input, as captured."""
    from core.gateway.client import as_body  # imported when read: it brings httpx

    try:
        found = as_body(payload.value)["instances"]
    except InvalidInput:
        return [payload.value]
    return found if isinstance(found, list) else [payload.value]


def outputs(payload: Payload, count: int, variant: str) -> tuple[list[Any] | None, str | None]:
    """One output per instance, or the error of that side (as the gateway words it)."""
    if payload.error is not None:
        return None, f"variant {variant}: {payload.error}"
    value = payload.value
    predictions = value.get("predictions", value) if isinstance(value, dict) else value
    if not isinstance(predictions, list) or len(predictions) != count:
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        return None, f"variant {variant} answered {got} predictions for {count} instances"
    return predictions, None


def pair(
    production: Iterable[tuple[str, Record]], shadow: Iterable[Record], shadow_variant: str
) -> Iterator[CapturedPair]:
    """Production's records (with the variant that answered) paired with the shadow's by
    inference id, in production's order; a record without a partner is left out."""
    waiting: dict[str, list[Record]] = {}
    for record in shadow:
        if record.inference_id:
            waiting.setdefault(record.inference_id, []).append(record)
    for variant, record in production:
        partners = waiting.get(record.inference_id or "")
        if partners:
            yield from _pairs(record, variant, partners.pop(0), shadow_variant)


def _pairs(
    production: Record, variant: str, shadow: Record, shadow_variant: str
) -> Iterator[CapturedPair]:
    from core.gateway.mirror import pair_id  # imported when read: it brings the gateway

    assert production.inference_id is not None
    rows = instances(production.input)
    p_out, p_err = outputs(production.output, len(rows), variant)
    s_out, s_err = outputs(shadow.output, len(rows), shadow_variant)
    for i, row in enumerate(rows):
        yield CapturedPair(
            request_id=pair_id(production.inference_id, i, len(rows)),
            input=row,
            production=None if p_out is None else p_out[i],
            shadow=None if s_out is None else s_out[i],
            production_variant=variant,
            shadow_variant=shadow_variant,
            production_ms=None,  # SageMaker's capture holds no latency: none is compared
            shadow_ms=None,
            production_error=p_err,
            shadow_error=s_err,
        )


# ---------------------------------------------------------------- on S3


def _download(s3: Any, bucket: str, key: str) -> list[Record]:
    uri = f"s3://{bucket}/{key}"
    with aws_call("GetObject", uri):
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    lines = enumerate(body.splitlines(), start=1)
    return [parse(line, f"{uri}:{number}") for number, line in lines if line.strip()]


class CaptureFiles:
    """Capture files read once each: SageMaker writes a file whole and never changes it, and
    a shadow test looks at its captures again and again (each look of collect, then the
    analysis). What a listing no longer shows (cleared, or before the window) is forgotten."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, str], list[Record]] = {}
        self._lock = threading.Lock()

    def keep(self, bucket: str, prefixes: list[str], listed: set[str]) -> None:
        """Forget the files of `bucket` under `prefixes` that are not in `listed`."""
        with self._lock:
            for cached, key in list(self._files):
                if cached == bucket and key.startswith(tuple(prefixes)) and key not in listed:
                    del self._files[(cached, key)]

    def records(self, s3: Any, bucket: str, key: str) -> list[Record]:
        with self._lock:
            found = self._files.get((bucket, key))
        if found is None:
            found = _download(s3, bucket, key)
            with self._lock:
                self._files[(bucket, key)] = found
        return found


def read_pairs(
    s3: Any,
    bucket: str,
    endpoint: str,
    production: list[str],
    shadow_variant: str,
    files: CaptureFiles,
) -> Iterator[CapturedPair]:
    """The pairs captured while `shadow_variant` shadowed the endpoint's `production`
    variants."""
    shadow_prefix = variant_prefix(endpoint, shadow_variant)
    shadow_keys = list_keys(s3, bucket, shadow_prefix)
    listed = {shadow_prefix: shadow_keys}
    if shadow_keys:  # listing is cheap: the window of every variant, before any download
        for variant in production:
            prefix = variant_prefix(endpoint, variant)
            listed[prefix] = list_keys(s3, bucket, prefix, start_after(prefix, shadow_keys[0]))
    files.keep(bucket, list(listed), {k for found in listed.values() for k in found})
    shadow = [r for key in shadow_keys for r in files.records(s3, bucket, key)]

    def answered() -> Iterator[tuple[str, Record]]:
        for variant in production:
            for key in listed.get(variant_prefix(endpoint, variant), []):
                for record in files.records(s3, bucket, key):
                    yield variant, record

    yield from pair(answered(), shadow, shadow_variant)
