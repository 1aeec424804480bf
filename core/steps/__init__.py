"""Carries out one command through the ports. Every handler is idempotent.

Handlers compute what to change from the deployment's context, which the
worker saved before running the command, so a handler run again after a crash
computes the same change and the same "previous" state to undo to.

The handlers live with their area, an undo handler with the change it undoes:
code (the consuming repository), artifacts (the model version: validate,
artifact, registry status), endpoints, alarms (and bakes), the golden check on the
endpoint, shadow, retirement.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from core.domain import Command, Deployment
from core.plan import Action
from core.ports import Ports
from core.steps.alarms import AlarmSteps
from core.steps.artifacts import ArtifactSteps
from core.steps.base import Done, Handler, NotYet, Outcome
from core.steps.code import CodeSteps
from core.steps.endpoints import EndpointSteps
from core.steps.golden import GoldenSteps
from core.steps.retirement import RetirementSteps
from core.steps.shadow import ShadowSteps, read_replay
from core.store import Store
from core.workspace import Workspace

__all__ = ["Done", "Executor", "NotYet", "Outcome", "read_replay"]


class Executor:
    def __init__(
        self, ws: Workspace, ports: Ports, store: Store, clock: Callable[[], datetime]
    ) -> None:
        self.ws = ws
        self.ports = ports
        self.store = store
        self.clock = clock
        code = CodeSteps(ws, ports, store, clock)
        artifacts = ArtifactSteps(ws, ports, store, clock)
        endpoints = EndpointSteps(ws, ports, store, clock)
        alarms = AlarmSteps(ws, ports, store, clock)
        golden = GoldenSteps(ws, ports, store, clock)
        shadow = ShadowSteps(ws, ports, store, clock)
        retirement = RetirementSteps(ws, ports, store, clock)
        self.handlers: dict[Action, Handler] = {
            Action.VALIDATE: artifacts.validate,
            Action.OPEN_CHANGE: code.open_change,
            Action.RUN_CHECKS: code.run_checks,
            Action.MERGE_CHANGE: code.merge_change,
            Action.COPY_ARTIFACT: artifacts.copy_artifact,
            Action.SET_STATUS: artifacts.set_status,
            Action.CREATE_VARIANT: endpoints.endpoint_step,
            Action.SHIFT_TRAFFIC: endpoints.endpoint_step,
            Action.START_SHADOW: endpoints.endpoint_step,
            Action.STOP_SHADOW: endpoints.endpoint_step,
            Action.DRAIN_OLD: endpoints.endpoint_step,
            Action.REMOVE_TRAFFIC: endpoints.endpoint_step,
            Action.CREATE_ALARMS: alarms.create_alarms,
            Action.CHECK_GOLDEN: golden.check_golden,
            Action.BAKE: alarms.bake,
            Action.COLLECT: shadow.collect,
            Action.ANALYZE: shadow.analyze,
            Action.SCAN_USAGE: retirement.scan_usage,
            Action.REMOVE_ALARMS: retirement.remove_alarms,
            Action.REMOVE_CODE: retirement.remove_code,
            Action.TRASH_ARTIFACTS: retirement.trash_artifacts,
            Action.PURGE_TRASH: retirement.purge_trash,
            # undo
            Action.REVERT_CHANGE: code.revert_change,
            Action.DELETE_ARTIFACT: artifacts.delete_artifact,
            Action.DELETE_STAGED: artifacts.delete_staged,
            Action.RESTORE_ENDPOINTS: endpoints.restore_endpoints,
            Action.DELETE_ALARMS: alarms.delete_alarms,
            Action.RESTORE_ALARMS: retirement.restore_alarms,
            Action.RESTORE_ARTIFACTS: retirement.restore_artifacts,
        }

    def run(self, d: Deployment, cmd: Command) -> Outcome:
        """Carry out `cmd`; raises PortError (TransientError to be retried)."""
        return self.handlers[Action(cmd.action)](d, cmd)
