"""A small fake of Comet's REST API (the model registry calls of comet_ml's `API`), on
127.0.0.1, for tests.

It takes real requests from the real client (`COMET_URL_OVERRIDE=fake.url_override`),
keeps real state (registry models, their versions with status, tags and asset files;
experiments and the models logged to them, which `write/registry-model/item/create`
registers as a new version) and records every request, so a test asserts on what arrived
and what changed, not on mocks.
`fail(path, status, times)` makes the next requests of a path answer an HTTP error, the
way a busy or broken Comet does; `meanwhile(path, fn)` runs `fn` just before the next
request of a path is served (another client's write landing first).

    with FakeComet(api_key="k") as comet:
        comet.add_version("ws", "churn", "1.0.0", {"model.joblib": data})
        monkeypatch.setenv("COMET_URL_OVERRIDE", comet.url_override)
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.http_fake import LocalHttpFake

REST = "/api/rest/v2/"
BACKEND_VERSION = "4.20.500"
# What Comet takes as a registry version: a semantic version.
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


@dataclass
class Request:
    """One request as it arrived: `path` relative to the REST root (or the full path)."""

    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any] | None
    authorization: str | None
    files: dict[str, bytes] = field(default_factory=dict)  # a multipart upload's parts


@dataclass
class FakeVersion:
    item_id: str
    version: str
    files: dict[str, bytes]
    status: str = "None"
    tags: list[str] = field(default_factory=list)
    user: str = "someone"
    created_at: int = 0
    comment: str = ""


@dataclass
class FakeModel:
    model_id: str
    name: str
    workspace: str
    versions: dict[str, FakeVersion] = field(default_factory=dict)


@dataclass
class FakeExperiment:
    """An experiment made through the REST API, with the models logged to it: model name
    -> file name -> content (assets of type `model-element`, grouped by model name)."""

    key: str
    workspace: str
    project: str
    name: str | None
    models: dict[str, dict[str, bytes]] = field(default_factory=dict)
    assets: dict[str, bytes] = field(default_factory=dict)


@dataclass
class _Failure:
    path: str
    status: int
    times: int


class FakeComet(LocalHttpFake):
    """The fake server; start it with `with FakeComet() as comet:` or `start()`/`stop()`."""

    def __init__(
        self,
        api_key: str | None = None,
        allowed_status: list[str] | None = None,
        user: str = "comet-user",
    ) -> None:
        self.api_key = api_key
        self.user = user  # the user the API key belongs to: who registers through it
        # Status values are set per organisation; Archived and Retired are not among these.
        self.allowed_status = allowed_status or ["None", "Development", "Staging", "Production"]
        self.models: dict[tuple[str, str], FakeModel] = {}
        self.experiments: dict[str, FakeExperiment] = {}
        self.requests: list[Request] = []
        self._failures: list[_Failure] = []
        self._meanwhile: list[tuple[str, Callable[[], object]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------ running

    @property
    def base(self) -> str:
        return self.root

    @property
    def url_override(self) -> str:
        """What `COMET_URL_OVERRIDE` should be."""
        return f"{self.base}/clientlib/"

    # ------------------------------------------------------------ state, for tests

    def add_version(
        self,
        workspace: str,
        model: str,
        version: str,
        files: dict[str, bytes],
        tags: list[str] | None = None,
        user: str = "someone",
    ) -> FakeVersion:
        """Register `version` of `model` with these asset files (as Comet's UI or an
        experiment's `register_model` would)."""
        with self._lock:
            entry = self.models.setdefault(
                (workspace, model), FakeModel(uuid.uuid4().hex, model, workspace)
            )
            v = FakeVersion(
                uuid.uuid4().hex,
                version,
                dict(files),
                tags=list(tags or []),
                user=user,
                created_at=int(time.time() * 1000),
            )
            entry.versions[version] = v
            return v

    def version(self, workspace: str, model: str, version: str) -> FakeVersion:
        with self._lock:
            return self.models[(workspace, model)].versions[version]

    def fail(self, path: str, status: int = 500, times: int = 1) -> None:
        """The next `times` requests whose REST path starts with `path` answer `status`."""
        with self._lock:
            self._failures.append(_Failure(path, status, times))

    def meanwhile(self, path: str, fn: Callable[[], object]) -> None:
        """Run `fn` once, just before the next request whose REST path starts with `path`
        is answered."""
        with self._lock:
            self._meanwhile.append((path, fn))

    def requests_to(self, path: str, method: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(path) and (method is None or r.method == method)
            ]

    def writes(self) -> list[Request]:
        """Requests that changed (or tried to change) state."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith("write/")]

    # ------------------------------------------------------------ serving

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        params = dict(parse_qsl(url.query))
        body: dict[str, Any] | None = None
        kind = request.headers.get("Content-Type") or ""
        files: dict[str, bytes] = {}
        if raw and "json" in kind:
            body = json.loads(raw)
        elif raw and kind.startswith("multipart/form-data"):
            files = _multipart(kind, raw)
        path = url.path.removeprefix(REST) if url.path.startswith(REST) else url.path
        auth = request.headers.get("Authorization")
        with self._lock:
            self.requests.append(Request(request.command, path, params, body, auth, files))
            failure = next((f for f in self._failures if path.startswith(f.path)), None)
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            hook = next((h for h in self._meanwhile if path.startswith(h[0])), None)
            if hook is not None:
                self._meanwhile.remove(hook)
        if failure is not None:
            self._json(request, failure.status, {"msg": f"injected HTTP {failure.status}"})
            return
        if hook is not None:
            hook[1]()
        if path == "/clientlib/isAlive/ver":
            self._json(request, 200, {"version": BACKEND_VERSION})
            return
        if self.api_key is not None and auth != self.api_key:
            self._json(request, 401, {"msg": "Invalid API key"})
            return
        with self._lock:
            try:
                status, answer = self._route(request.command, path, params, body or {}, files)
            except KeyError as exc:
                status, answer = 404, {"msg": f"not found: {exc.args[0]}", "code": 404}
        if isinstance(answer, bytes):
            self._send(request, status, answer, "application/octet-stream")
        else:
            self._json(request, status, answer)

    def _model(self, params: dict[str, str]) -> FakeModel:
        key = (params.get("workspaceName", ""), params.get("modelName", ""))
        if key not in self.models:
            raise KeyError(f"registry model {key[1]!r} in workspace {key[0]!r}")
        return self.models[key]

    def _version(self, params: dict[str, str]) -> tuple[FakeModel, FakeVersion]:
        model = self._model(params)
        version = params.get("version", "")
        if version not in model.versions:
            raise KeyError(f"version {version!r} of registry model {model.name!r}")
        return model, model.versions[version]

    def _item(self, item_id: str) -> FakeVersion:
        for model in self.models.values():
            for v in model.versions.values():
                if v.item_id == item_id:
                    return v
        raise KeyError(f"model item {item_id!r}")

    def _details(self, v: FakeVersion) -> dict[str, Any]:
        return {
            "registryModelItemId": v.item_id,
            "version": v.version,
            "status": v.status,
            "tags": list(v.tags),
            "stages": list(v.tags),
            "userName": v.user,
            "createdAt": v.created_at,
            "lastUpdated": v.created_at,
            "comment": v.comment,
            "assets": [
                {"fileName": name, "fileSize": len(data), "assetId": f"{v.item_id}-{name}"}
                for name, data in sorted(v.files.items())
            ],
        }

    def _route(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: dict[str, Any],
        files: dict[str, bytes],
    ) -> tuple[int, dict[str, Any] | bytes]:
        if path.startswith("write/experiment/") or path == "experiment/metadata":
            return self._experiment_route(method, path, params, body, files)
        if path == "write/registry-model/item/create" and method == "POST":
            return self._register(body)
        if path == "registry-model":
            ws = params.get("workspaceName", "")
            models = [m for (w, _), m in sorted(self.models.items()) if w == ws]
            return 200, {
                "registryModels": [
                    {"registryModelId": m.model_id, "modelName": m.name} for m in models
                ]
            }
        if path == "registry-model/details":
            m = self._model(params)
            return 200, {
                "registryModelId": m.model_id,
                "modelName": m.name,
                "versions": [self._details(v) for v in m.versions.values()],
            }
        if path == "registry-model/compact-details":
            return 200, {"registryModelId": self._model(params).model_id}
        if path == "registry-model/items":
            m = self._model(params)
            return 200, {"items": [{"version": v} for v in reversed(list(m.versions))]}
        if path == "registry-model/item/details":
            return 200, self._details(self._version(params)[1])
        if path == "registry-model/allowed_status_values":
            return 200, {"allowedStatus": list(self.allowed_status)}
        if path == "registry-model/item/download":
            _, v = self._version(params)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for name, data in v.files.items():
                    archive.writestr(name, data)
            return 200, buffer.getvalue()
        if path == "write/registry-model/item/status" and method == "POST":
            v = self._item(str(body.get("modelItemId")))
            if body.get("status") not in self.allowed_status:
                return 400, {"msg": f"status {body.get('status')!r} is not allowed", "code": 400}
            v.status = str(body["status"])
            return 200, {}
        if path == "write/registry-model/item/stage":
            v = self._item(params.get("modelItemId", ""))
            if params.get("stage") not in v.tags:
                v.tags.append(params["stage"])
            return 200, {}
        if path == "write/registry-model/item/stage/delete":
            v = self._item(params.get("modelItemId", ""))
            v.tags = [t for t in v.tags if t != params.get("stage")]
            return 200, {}
        return 404, {"msg": f"no route {method} {path}", "code": 404}

    def _experiment(self, key: str) -> FakeExperiment:
        if key not in self.experiments:
            raise KeyError(f"experiment {key!r}")
        return self.experiments[key]

    def _experiment_route(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: dict[str, Any],
        files: dict[str, bytes],
    ) -> tuple[int, dict[str, Any]]:
        if path == "write/experiment/create" and method == "POST":
            key = uuid.uuid4().hex
            workspace = str(body.get("workspaceName") or "")
            if not workspace or not body.get("projectName"):
                return 400, {"msg": "workspaceName and projectName are required", "code": 400}
            self.experiments[key] = FakeExperiment(
                key, workspace, str(body["projectName"]), body.get("experimentName")
            )
            return 200, {"experimentKey": key, "link": f"{self.base}/{workspace}/{key}"}
        if path == "experiment/metadata":
            e = self._experiment(params.get("experimentKey", ""))
            return 200, {
                "experimentKey": e.key,
                "experimentName": e.name,
                "projectId": f"project-{e.project}",
                "projectName": e.project,
                "workspaceName": e.workspace,
                "archived": False,
                "running": False,
                "durationMillis": 0,
                "startTimeMillis": 0,
                "endTimeMillis": 0,
            }
        if path == "write/experiment/upload-asset" and method == "POST":
            e = self._experiment(params.get("experimentKey", ""))
            if "file" not in files or not params.get("fileName"):
                return 400, {"msg": "a file and its fileName are required", "code": 400}
            name = params["fileName"]
            if params.get("type") == "model-element":
                if not params.get("groupingName"):
                    return 400, {"msg": "a model element needs its groupingName", "code": 400}
                e.models.setdefault(params["groupingName"], {})[name] = files["file"]
            else:
                e.assets[name] = files["file"]
            return 200, {"assetId": uuid.uuid4().hex, "fileName": name}
        return 404, {"msg": f"no route {method} {path}", "code": 404}

    def _register(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A new registry version from an experiment's logged model, as Comet makes it."""
        e = self._experiment(str(body.get("experimentKey") or ""))
        logged = str(body.get("experimentModelName") or "")
        if logged not in e.models:
            return 400, {
                "msg": f"experiment has no model {logged!r} (models: {sorted(e.models)})",
                "code": 400,
            }
        version = str(body.get("version") or "1.0.0")
        if not _SEMVER.match(version):
            return 400, {
                "msg": f"invalid version {version!r}",
                "code": 400,
                "sdk_error_code": 42001,  # comet_ml: INVALID_VERSION_STRING
            }
        name = str(body.get("registryModelName") or logged)
        model = self.models.get((e.workspace, name))
        if model is not None and version in model.versions:
            return 409, {"msg": f"version {version} of {name!r} already exists", "code": 409}
        status = body.get("status") or "None"
        if status not in self.allowed_status:
            return 400, {"msg": f"status {status!r} is not allowed", "code": 400}
        if model is None:
            model = self.models[(e.workspace, name)] = FakeModel(
                uuid.uuid4().hex, name, e.workspace
            )
        v = FakeVersion(
            uuid.uuid4().hex,
            version,
            dict(e.models[logged]),
            status=str(status),
            tags=[str(t) for t in body.get("tags") or []],
            user=self.user,
            created_at=int(time.time() * 1000),
            comment=str(body.get("versionComment") or ""),
        )
        model.versions[version] = v
        return 200, {"registryModelId": model.model_id, "registryModelItemId": v.item_id}

    @classmethod
    def _json(cls, request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        cls._send(request, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    """The parts of a multipart/form-data body: field name -> content."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            parts[name] = payload
    return parts
