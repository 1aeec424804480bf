"""The gateway as a child process: it runs model code, so it holds no credentials.

`GatewayProcess(home, port).start()` runs `python -m core.gateway` with an
environment built from an allowlist (`core.isolation.child_env`), in its own
session (a Ctrl-C reaches the parent only, which stops the gateway when it
chooses), and dying with the parent if the parent is killed (Linux). The
child prints the URL it listens on (so port 0 works); `start` returns once
`GET /healthz` answers 200. `stop` sends SIGTERM, so the gateway drains its
shadow work and captures, and SIGKILLs it after a timeout.

What the child writes to stdout and stderr after it started goes to this
process's stderr.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from core.isolation import child_env, die_with_parent
from core.ports import PortError

__all__ = ["GatewayProcess"]

_LISTENING = re.compile(r"listening on (http://\S+)")


class GatewayProcess:
    """`python -m core.gateway --home HOME --port PORT` as a child process."""

    def __init__(
        self,
        home: Path,
        port: int = 0,
        *,
        region: str = "local",
        seed: int | None = None,
        python: str | None = None,
    ) -> None:
        self.home = Path(home)
        self.port = port
        self.region = region
        self.seed = seed
        self.python = python or sys.executable
        self._proc: subprocess.Popen[str] | None = None
        self._url: str | None = None
        self._ready = threading.Event()
        self._started = threading.Event()  # after start(): pass the child's output on
        self._early: deque[str] = deque(maxlen=50)  # output before then, for the error
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []

    @property
    def url(self) -> str:
        if self._url is None:
            raise PortError("the gateway is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        """Start the child; returns once it answers GET /healthz with 200.

        Raises PortError with a one-line reason when the child exits first, or when it is
        not ready within `timeout_s` (it is stopped then)."""
        cmd = [self.python, "-P", "-m", "core.gateway", "--home", str(self.home.resolve())]
        cmd += ["--port", str(self.port), "--region", self.region]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        self._proc = subprocess.Popen(
            cmd,
            env=child_env({"PYTHONUNBUFFERED": "1"}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True, name=name)
            for stream, name in (
                (self._proc.stdout, "mmm-gateway-stdout"),
                (self._proc.stderr, "mmm-gateway-stderr"),
            )
        ]
        for reader in self._readers:
            reader.start()
        deadline = time.monotonic() + timeout_s
        try:
            self._wait_ready(deadline, timeout_s)
        except BaseException:
            self.stop(timeout_s=5)
            raise
        with self._lock:
            for line in self._early:
                _echo(line)
            self._early.clear()
            self._started.set()
        return self

    def _wait_ready(self, deadline: float, timeout_s: float) -> None:
        assert self._proc is not None
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    for reader in self._readers:
                        reader.join(2)
                    why = self._why()
                    if why.startswith("error: "):  # the child's own one-line error
                        raise PortError(why.removeprefix("error: "))
                    raise PortError(
                        f"the gateway exited with {code} before it was ready"
                        + (f": {why}" if why else "")
                    )
                if self._ready.is_set():
                    try:
                        if client.get(f"{self._url}/healthz").status_code == 200:
                            return
                    except httpx.HTTPError:
                        pass
                if time.monotonic() > deadline:
                    why = self._why()
                    raise PortError(
                        f"the gateway was not ready within {timeout_s:g} s"
                        + (f": {why}" if why else "")
                    )
                time.sleep(0.05)

    def _why(self) -> str:
        """The child's last line of output before it was ready ("" when it said nothing)."""
        with self._lock:
            lines = [" ".join(line.split()) for line in self._early if line.strip()]
        return lines[-1] if lines else ""

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if self._url is None:
                found = _LISTENING.search(line)
                if found:
                    self._url = found.group(1)
                    self._ready.set()
                    continue
            with self._lock:
                if not self._started.is_set():
                    self._early.append(line)
                    continue
            _echo(line)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (the gateway drains shadow work and captures), SIGKILL after `timeout_s`.
        Returns the child's exit status (None when it was never started)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
        for reader in self._readers:
            reader.join(5)
        return proc.returncode

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _echo(line: str) -> None:
    try:
        sys.stderr.write(line if line.endswith("\n") else line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: the line has nowhere to go
        pass


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()
