"""What moto 5.2 lacks on CloudWatch, added to its backend (the threaded server serves it
too). Installed once by tests.support.moto_server.

moto never evaluates alarms (a test puts one in ALARM with `set_alarm_state`) and has no
DescribeAlarmHistory: it keeps only the states an alarm left, not the transitions. Here
every state change is recorded as CloudWatch records it, and DescribeAlarmHistory answers
`StateUpdate` items in CloudWatch's shape: newest first, `HistoryData` a JSON document with
`oldState` and `newState` (`stateValue`, `stateReason`, `stateReasonData`), filtered by
alarm name and `StartDate`/`EndDate`. So a test can put an alarm in ALARM and back to OK
between two looks of a bake, a breach the alarm's current state no longer shows.

Not added: ConfigurationUpdate and Action items, `ScanBy`, paging past one page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch import models as cw_models
from moto.cloudwatch import responses as cw_responses
from moto.core.responses import ActionResult

_installed = False


def _state(value: str, reason: str, reason_data: str) -> dict[str, Any]:
    try:
        data = json.loads(reason_data or "{}")
    except ValueError:
        data = {}
    return {"stateValue": value, "stateReason": reason, "stateReasonData": data}


def _when(param: Any) -> datetime | None:
    """A request's date as moto's clock keeps them: naive, in UTC."""
    if param in (None, ""):
        return None
    when = param if isinstance(param, datetime) else datetime.fromisoformat(str(param))
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def install() -> None:
    """Patch moto's CloudWatch alarms and responses (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    original_update = cw_models.Alarm.update_state

    def update_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        old = _state(self.state_value, self.state_reason, self.state_reason_data)
        original_update(self, reason, reason_data, state_value)
        new = _state(state_value, reason, reason_data)
        item = {
            "AlarmName": self.name,
            "AlarmType": "MetricAlarm",
            "Timestamp": self.state_updated_timestamp,
            "HistoryItemType": "StateUpdate",
            "HistorySummary": f"Alarm updated from {old['stateValue']} to {state_value}",
            "HistoryData": json.dumps({"version": "1.0", "oldState": old, "newState": new}),
        }
        if not hasattr(self, "transitions"):
            self.transitions = []
        self.transitions.append(item)

    def describe_alarm_history(self: Any) -> ActionResult:
        name = self._get_param("AlarmName")
        kind = self._get_param("HistoryItemType")
        start = _when(self._get_param("StartDate"))
        end = _when(self._get_param("EndDate"))
        limit = int(self._get_param("MaxRecords") or 100)
        backend = self.cloudwatch_backend
        alarms = [backend.alarms[name]] if name in backend.alarms else []
        if not name:
            alarms = list(backend.alarms.values())
        items = [
            item
            for alarm in alarms
            for item in getattr(alarm, "transitions", [])
            if kind in (None, "", item["HistoryItemType"])
            and (start is None or item["Timestamp"] >= start)
            and (end is None or item["Timestamp"] <= end)
        ]
        items.sort(key=lambda i: i["Timestamp"], reverse=True)
        return ActionResult({"AlarmHistoryItems": items[:limit]})

    cw_models.Alarm.update_state = update_state  # type: ignore[method-assign]
    cw_responses.CloudWatchResponse.describe_alarm_history = describe_alarm_history  # type: ignore[attr-defined]
