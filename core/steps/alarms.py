"""Steps on the monitor during a rollout: create the candidate's alarms (delete them to
undo) and bake, watching them for a while."""

from __future__ import annotations

from datetime import timedelta

from core.domain import Command, Deployment
from core.layout import variant_name
from core.steps.base import Done, NotYet, Outcome, Steps, regions_of, since


class AlarmSteps(Steps):
    def create_alarms(self, d: Deployment, cmd: Command) -> Outcome:
        variant = variant_name(d.model, d.version)
        created = []
        for region in regions_of(d, cmd):
            names = self.ports.monitor.ensure_alarms(d.endpoint, region, variant, d.spec.alarms)
            created.append(
                {
                    "endpoint": d.endpoint,
                    "region": region,
                    "variant": variant,
                    "names": names,
                    "thresholds": d.spec.alarms.model_dump(),
                }
            )
        made = {a["region"] for a in created}  # (again, if run again after a crash)
        every = [a for a in d.context.alarms if a["region"] not in made] + created
        return Done(
            {
                "alarms": created,
                "facts": {"alarms": every},
                "summary": f"{sum(len(a['names']) for a in created)} alarms",
            }
        )

    def delete_alarms(self, d: Deployment, cmd: Command) -> Outcome:
        for entry in cmd.args["alarms"]:
            self.ports.monitor.delete_alarms(entry["names"], entry["region"])
        return Done({"summary": "alarms deleted"})

    def bake(self, d: Deployment, cmd: Command) -> Outcome:
        now = self.clock()
        started = self._started(d, cmd, now)
        fired = []
        for entry in d.context.alarms:
            for state in self.ports.monitor.evaluate(
                entry["names"], entry["region"], since=started.timestamp()
            ):
                if state.firing:
                    fired.append(state.model_dump())
        if fired:
            return Done({"fired": fired, "summary": f"{len(fired)} alarm(s) fired"})
        seconds = float(cmd.args["seconds"])
        end = started + timedelta(seconds=seconds)
        if now >= end:
            return Done(
                {"fired": [], "summary": f"baked {seconds:g}s at {cmd.args['percent']}%, no alarm"}
            )
        poll = max(0.2, min(5.0, seconds / 20))
        return NotYet(min(end, now + timedelta(seconds=poll)), since(started, seconds))
