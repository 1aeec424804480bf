"""The Monitor port on CloudWatch: per-variant alarms on SageMaker's metrics, in the
endpoint's region, and one dashboard per endpoint.

Each variant has two alarms (names from core.layout):
- error rate: `Invocation5XXErrors / Invocations` (server errors only: a client's bad
  request, a 4xx, never counts against a variant);
- p99 latency: `ModelLatency` p99 (SageMaker reports microseconds; the threshold is ms).
Both are metric-math alarms that read 0 below `min_requests` invocations in the period:
too few requests give no verdict, as with the embedded monitor. Missing data is not a
breach. A bake reads the alarms over its window (their state, and their history where the
state changed inside it): one that went to ALARM rolls the deployment back.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

from core.adapters.aws.errors import aws_call, error_code
from core.adapters.aws.session import AwsClients
from core.layout import ALARM_PREFIX, alarm_name, parse_alarm_name
from core.ports import AlarmRef, AlarmState, NotFound, VariantFigures
from core.spec import Alarms

NAMESPACE = "AWS/SageMaker"
PERIOD_S = 60
ERROR_RATE = "error_rate"
P99_LATENCY = "p99_latency_ms"
_DASHBOARD_BAD = re.compile(r"[^A-Za-z0-9_-]")


def dashboard_name(endpoint: str) -> str:
    """The endpoint's dashboard (CloudWatch allows letters, digits, '-' and '_')."""
    return _DASHBOARD_BAD.sub("-", f"mmm-{endpoint}")[:255]


def _metric(query_id: str, name: str, endpoint: str, variant: str, stat: str) -> dict[str, Any]:
    return {
        "Id": query_id,
        "ReturnData": False,
        "MetricStat": {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": name,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": variant},
                ],
            },
            "Period": PERIOD_S,
            "Stat": stat,
        },
    }


def alarm_queries(endpoint: str, variant: str, metric: str, alarms: Alarms) -> list[dict[str, Any]]:
    """The metric math of one alarm: `value` is what is compared with the threshold."""
    invocations = _metric("invocations", "Invocations", endpoint, variant, "Sum")
    floor = alarms.min_requests
    if metric == ERROR_RATE:
        errors = _metric("errors", "Invocation5XXErrors", endpoint, variant, "Sum")
        expression = f"IF(invocations >= {floor}, errors / invocations, 0)"
        queries = [invocations, errors]
    else:
        latency = _metric("latency", "ModelLatency", endpoint, variant, "p99")
        expression = f"IF(invocations >= {floor}, latency / 1000, 0)"  # microseconds -> ms
        queries = [invocations, latency]
    value = {"Id": "value", "Expression": expression, "Label": metric, "ReturnData": True}
    return [*queries, value]


class CloudWatchMonitor:
    """Alarms and dashboards in each endpoint's region. `regions`: where `alarms()` looks
    besides the home region and every region this process has touched."""

    def __init__(self, clients: AwsClients, regions: list[str] | None = None) -> None:
        self.clients = clients
        self._regions = {clients.home_region, *(regions or [])}
        self._lock = threading.Lock()

    def _cw(self, region: str) -> Any:
        with self._lock:
            self._regions.add(region)
        return self.clients.client("cloudwatch", region)

    def ensure_alarms(self, endpoint: str, region: str, variant: str, alarms: Alarms) -> list[str]:
        cw = self._cw(region)
        rules = [(ERROR_RATE, alarms.error_rate), (P99_LATENCY, alarms.p99_latency_ms)]
        names = []
        for metric, threshold in rules:
            name = alarm_name(endpoint, variant, metric)
            with aws_call("PutMetricAlarm", f"alarm {name} ({region})"):
                # put_metric_alarm replaces an alarm of that name: calling it twice is once
                cw.put_metric_alarm(
                    AlarmName=name,
                    AlarmDescription=f"mmm: {metric} of {variant} on {endpoint}",
                    Metrics=alarm_queries(endpoint, variant, metric, alarms),
                    ComparisonOperator="GreaterThanThreshold",
                    Threshold=float(threshold),
                    EvaluationPeriods=1,
                    DatapointsToAlarm=1,
                    TreatMissingData="notBreaching",
                    ActionsEnabled=False,
                    Tags=[{"Key": "managed-by", "Value": "mmm"}],
                )
            names.append(name)
        self._put_dashboard(endpoint, region)
        return names

    def _alarm_records(
        self, region: str, prefix: str = "", names: list[str] | None = None
    ) -> list[dict[str, Any]]:
        cw = self._cw(region)
        found: list[dict[str, Any]] = []
        with aws_call("DescribeAlarms", f"alarms {prefix or names} ({region})"):
            if names is not None:
                for start in range(0, len(names), 100):  # the API's batch limit
                    page = cw.describe_alarms(AlarmNames=names[start : start + 100])
                    found += page.get("MetricAlarms", [])
            else:
                pages = cw.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix)
                for page in pages:
                    found += page.get("MetricAlarms", [])
        return found

    def _put_dashboard(self, endpoint: str, region: str) -> None:
        """The endpoint's dashboard: a graph of each variant's invocations, 5xx and latency,
        made again from its alarms (so it follows the variants mmm watches there)."""
        prefix = f"{ALARM_PREFIX}{endpoint}/"
        variants = sorted(
            {
                p.variant
                for a in self._alarm_records(region, prefix)
                if (p := parse_alarm_name(a["AlarmName"])) and p.endpoint == endpoint
            }
        )
        name = dashboard_name(endpoint)
        cw = self._cw(region)
        if not variants:
            with aws_call("DeleteDashboards", f"dashboard {name} ({region})"):
                try:
                    cw.delete_dashboards(DashboardNames=[name])
                except Exception as exc:
                    if error_code(exc) not in {"ResourceNotFound", "DashboardNotFoundError"}:
                        raise
            return
        widgets = []
        for i, variant in enumerate(variants):
            dims = ["EndpointName", endpoint, "VariantName", variant]
            widgets.append(
                {
                    "type": "metric",
                    "x": 0,
                    "y": 6 * i,
                    "width": 24,
                    "height": 6,
                    "properties": {
                        "title": f"{endpoint} / {variant}",
                        "region": region,
                        "period": PERIOD_S,
                        "metrics": [
                            [NAMESPACE, "Invocations", *dims, {"stat": "Sum"}],
                            [NAMESPACE, "Invocation5XXErrors", *dims, {"stat": "Sum"}],
                            [NAMESPACE, "Invocation4XXErrors", *dims, {"stat": "Sum"}],
                            [NAMESPACE, "ModelLatency", *dims, {"stat": "p99", "yAxis": "right"}],
                        ],
                    },
                }
            )
        with aws_call("PutDashboard", f"dashboard {name} ({region})"):
            cw.put_dashboard(DashboardName=name, DashboardBody=json.dumps({"widgets": widgets}))

    def delete_alarms(self, names: list[str], region: str) -> None:
        if not names:
            return
        cw = self._cw(region)
        with aws_call("DeleteAlarms", f"alarms {names[0]}... ({region})"):
            for start in range(0, len(names), 100):  # deleting a missing alarm is no error
                cw.delete_alarms(AlarmNames=names[start : start + 100])
        endpoints = {p.endpoint for n in names if (p := parse_alarm_name(n))}
        for endpoint in sorted(endpoints):
            self._put_dashboard(endpoint, region)  # gone with the endpoint's last alarm

    def evaluate(
        self, names: list[str], region: str, since: float | None = None
    ) -> list[AlarmState]:
        """The alarms over the window from `since` (now only, without it): one in ALARM now,
        or that went to ALARM since and back to OK between two looks, is firing. Only an
        alarm whose state changed inside the window costs a history read."""
        records = {a["AlarmName"]: a for a in self._alarm_records(region, names=list(names))}
        start = datetime.fromtimestamp(since, UTC) if since is not None else None
        states = []
        for name in names:
            record = records.get(name)
            if record is None:
                raise NotFound(f"CloudWatch ({region}): no alarm {name!r}")
            parsed = parse_alarm_name(name)
            metric = parsed.metric if parsed else str(record.get("MetricName", ""))
            firing = record.get("StateValue") == "ALARM"
            value = _reported_value(record.get("StateReasonData"))
            changed = record.get("StateUpdatedTimestamp")
            if not firing and start is not None and changed is not None and changed >= start:
                breach = self._breach_since(name, region, start)
                if breach is not None:
                    firing, value = True, breach
            states.append(
                AlarmState(
                    name=name,
                    metric=metric,
                    value=value,
                    threshold=float(record.get("Threshold", 0.0)),
                    firing=firing,
                )
            )
        return states

    def _breach_since(self, name: str, region: str, start: datetime) -> float | None:
        """The value reported when the alarm last went to ALARM after `start`; None if it
        did not (a state's history is kept by CloudWatch for two weeks)."""
        with aws_call("DescribeAlarmHistory", f"alarm {name} ({region})"):
            pages = (
                self._cw(region)
                .get_paginator("describe_alarm_history")
                .paginate(AlarmName=name, HistoryItemType="StateUpdate", StartDate=start)
            )
            for page in pages:
                for item in page.get("AlarmHistoryItems", []):
                    try:
                        new = json.loads(item.get("HistoryData") or "{}").get("newState", {})
                    except ValueError:
                        continue
                    if new.get("stateValue") == "ALARM":
                        return _reported_value(new.get("stateReasonData"))
        return None

    def alarms(self, prefix: str = "") -> list[AlarmRef]:
        with self._lock:
            regions = sorted(self._regions)
        return sorted(
            AlarmRef(region, a["AlarmName"])
            for region in regions
            for a in self._alarm_records(region, prefix)
        )

    def figures(
        self, endpoint: str, region: str, variant: str, role: str, window_s: float = 60.0
    ) -> VariantFigures:
        end = time.time()
        queries = [
            {**_metric("requests", "Invocations", endpoint, variant, "Sum"), "ReturnData": True},
            {
                **_metric("errors", "Invocation5XXErrors", endpoint, variant, "Sum"),
                "ReturnData": True,
            },
            {**_metric("p99", "ModelLatency", endpoint, variant, "p99"), "ReturnData": True},
        ]
        period = max(PERIOD_S, int(window_s) // PERIOD_S * PERIOD_S)
        for q in queries:
            q["MetricStat"]["Period"] = period
        with aws_call("GetMetricData", f"metrics of {endpoint}/{variant} ({region})"):
            data = self._cw(region).get_metric_data(
                MetricDataQueries=queries,
                StartTime=datetime.fromtimestamp(end - window_s, UTC),
                EndTime=datetime.fromtimestamp(end, UTC),
            )
        values = {r["Id"]: r.get("Values", []) for r in data.get("MetricDataResults", [])}
        requests = int(sum(values.get("requests", [])))
        errors = int(sum(values.get("errors", [])))
        p99 = values.get("p99", [])
        p99_ms = max(p99) / 1000 if p99 else None
        return VariantFigures.counted(
            endpoint, region, variant, role, window_s, requests, errors, p99_ms
        )


def _reported_value(data: Any) -> float:
    """The last value CloudWatch reported with a state change (0.0 when it gave none):
    `StateReasonData` as a JSON text, or as a history item's already parsed object."""
    try:
        parsed = json.loads(data or "{}") if isinstance(data, str) else (data or {})
        points = parsed.get("recentDatapoints") or []
        return float(points[-1]) if points else 0.0
    except (ValueError, TypeError, AttributeError):
        return 0.0
