"""Running deployments: here in this process, or by a live worker (`mmm up`, `mmm worker`)."""

from __future__ import annotations

import time

from core.domain import Deployment, DeploymentState
from core.notify import Notifications
from core.service.errors import WaitTimeout
from core.service.queries import Queries
from core.worker import Progress, Worker


class Running(Queries):
    def worker(self, on_change: Progress | None = None) -> Worker:
        """A worker on this service's store and ports (`on_change` sees every saved change)."""
        return Worker(self.ws, self.store, self.ports, clock=self.clock, on_change=on_change)

    def notifications(self) -> Notifications:
        """The notifier's consumer of the change feed, with its own cursor."""
        return Notifications(
            self.store, self.ports.notifier, lease_s=self.ws.settings.worker.lease_s
        )

    def worker_running(self) -> bool:
        """A `mmm up` or `mmm worker` is alive and will run what is queued."""
        return bool(
            self.store.live_workers(
                time.time(), within_s=max(5.0, self.ws.settings.worker.poll_s * 10)
            )
        )

    def run(
        self, d: Deployment, on_change: Progress | None = None, timeout_s: float | None = None
    ) -> Deployment:
        """Drive `d` in this process until it ends or waits for a person (notifying as it goes,
        as `mmm up` would)."""
        with self.notifications().running():
            return self.worker(on_change).drive(d.id, timeout_s)

    def submit(self, d: Deployment, on_change: Progress | None = None) -> Deployment:
        """Have `d` carried out: by a live worker when one is alive (returns `d` as it is),
        else here and now until it ends or waits for a person (returns it then)."""
        if d.active and not self.worker_running():
            return self.run(d, on_change)
        return d

    def wait(
        self,
        ref: str,
        timeout_s: float | None,
        on_change: Progress | None = None,
        poll_s: float = 0.5,
    ) -> Deployment:
        """Block until the deployment ends or waits for a person. A live worker runs it
        meanwhile; when none is alive (or its heartbeat stops), this process runs it.
        Raises WaitTimeout when `timeout_s` runs out first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = None
        while True:
            d = self.get(ref)
            if on_change is not None and (last is None or d.rev != last):
                on_change(d)
                last = d.rev
            if _settled(d):
                return d
            if not self.worker_running():
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                d = self.run(d, on_change, left)
                if _settled(d):
                    return d
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"timed out after {timeout_s:g}s: {d.id} is still {d.state.value} "
                    f"(stage {d.stage.value}); `mmm status {d.id} --wait` waits again"
                )
            time.sleep(poll_s)


def _settled(d: Deployment) -> bool:
    """Ended, or waiting for a person: nothing more happens without someone acting."""
    return not d.active or (d.state is DeploymentState.WAITING_APPROVAL and not d.pending)
