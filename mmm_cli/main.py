"""The `mmm` command: a thin front end over core.service.

Imports stay light at start-up (no model libraries, no Textual, no Slack) so
`mmm status` answers fast; heavy modules load inside the commands that need them.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

# mmm uses no pydantic plugin; looking for some reads every installed package's entry
# points at the first model (about 50 ms of each command's start). A value set stays.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from mmm_cli import render  # after the line above: it builds pydantic models

F = TypeVar("F", bound=Callable[..., Any])


class Ctx:
    def __init__(self, home: Path, actor: str, debug: bool) -> None:
        self.home = home
        self.actor = actor
        self.debug = debug

    def service(self) -> Any:
        """The service for this workspace and actor; where Slack is configured, whatever it
        runs is announced there (deployments run inline by this command included)."""
        from core.bootstrap import build_service

        svc = build_service(self.home, self.actor)
        slack = slack_config()
        if slack is not None:
            from mmm_bot import SlackNotifier

            svc.ports.notifier = SlackNotifier.for_service(svc, slack)
        return svc


def slack_config() -> Any:
    """The Slack bot's configuration, or None when Slack is not configured (the bot's code,
    and Slack's client, are imported only when it is)."""
    if not (os.environ.get("SLACK_BOT_TOKEN") and os.environ.get("SLACK_SIGNING_SECRET")):
        return None
    from mmm_bot import SlackConfig

    return SlackConfig.from_env()


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"mmm: error: {one_line(message)}", err=True)
    sys.exit(code)


def one_line(text: str) -> str:
    """`text` as one line: what the user typed may hold line breaks or characters that hide
    or reorder text (a name, a path, --strategy's value); they are shown escaped."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


# an OSError on a path no file can have (a name too long, a file where a folder must be)
_BAD_PATH = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.ENOENT, errno.EISDIR}


def handled(fn: F) -> F:
    """Turn the core's errors into one line on stderr and the contract's exit codes."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from core.bootstrap import WorkspaceError
        from core.ports import PortError
        from core.service import ServiceError
        from core.spec import SpecError

        ctx = click.get_current_context().find_object(Ctx)
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            _fail("interrupted; anything unfinished resumes when a worker runs (`mmm worker`)", 130)
        except Exception as exc:
            if ctx is not None and ctx.debug:
                raise
            if isinstance(exc, ServiceError):
                _fail(str(exc), exc.exit_code)
            if isinstance(exc, SpecError):
                _fail(str(exc), 2)
            if isinstance(exc, WorkspaceError | PortError):
                _fail(str(exc), 1)
            if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
                # the path and the system's reason say it all
                _fail(f"{exc.filename}: {exc.strerror}", 2 if exc.errno in _BAD_PATH else 1)
            _fail(f"{type(exc).__name__}: {exc} (run with --debug for details)", 1)

    return wrapper  # type: ignore[return-value]


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="MMM_HOME",
    default=Path(".mmm"),
    show_default=True,
    show_envvar=True,
    help="The workspace: settings, state, local backends.",
)
@click.option(
    "--as",
    "actor",
    envvar="MMM_USER",
    default=None,
    show_envvar=True,
    help="Who is acting (audit, four-eyes). Default: the OS login name.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="mmm")
@click.pass_context
def cli(ctx: click.Context, home: Path, actor: str | None, debug: bool) -> None:
    """mmm: deploy registered model versions safely, from one command."""
    # "a/../ws" is the workspace "ws": `init` makes its folders, and no "a" beside them
    ctx.obj = Ctx(Path(os.path.normpath(home)), actor or _login(), debug)


pass_ctx = click.make_pass_decorator(Ctx)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(fn)


# ---------------------------------------------------------------- workspace


@cli.command()
@pass_ctx
@handled
def init(c: Ctx) -> None:
    """Create the workspace with the embedded local backends (idempotent)."""
    from core.bootstrap import init_workspace

    ws, created = init_workspace(c.home)
    what = "created" if created else "already initialised"
    click.echo(f"workspace {ws.home} {what}: settings in {ws.home / 'mmm.yaml'}")


@cli.command()
@handled
def schema() -> None:
    """Print the JSON Schema of the deployment file."""
    from core.spec import deployment_schema

    render.emit_json(deployment_schema())


# ---------------------------------------------------------------- models


@cli.command()
@click.argument("model")
@click.option(
    "--artifact",
    type=click.Path(path_type=Path),
    required=True,
    help="Model file, or model folder (huggingface, pytorch).",
)
@click.option("--library", required=True, help="sklearn, xgboost, onnx, huggingface or pytorch.")
@click.option("--golden", type=click.Path(path_type=Path), help="Golden data (JSON Lines).")
@click.option("--owner", help="Owning team.")
@json_option
@pass_ctx
@handled
def register(
    c: Ctx,
    model: str,
    artifact: Path,
    library: str,
    golden: Path | None,
    owner: str | None,
    as_json: bool,
) -> None:
    """Register a new model version; prints its version as the registry names it."""
    svc = c.service()
    mv = svc.register(model, artifact, library, golden, owner)
    if as_json:
        render.emit_json(mv.model_dump(mode="json"))
    else:
        click.echo(mv.version)


@cli.command()
@json_option
@pass_ctx
@handled
def models(c: Ctx, as_json: bool) -> None:
    """Models, their versions, and where each is deployed."""
    items = c.service().models()
    if as_json:
        render.emit_json(items)
    else:
        click.echo(render.models_table(items))


@cli.command()
@click.argument("model")
@click.option("--version", "version", help="Only this version (as the registry names it).")
@json_option
@pass_ctx
@handled
def usage(c: Ctx, model: str, version: str | None, as_json: bool) -> None:
    """Every usage site of a model: endpoints, artifacts, alarms, code, registry."""
    sites = c.service().usage(model, version)
    if as_json:
        render.emit_json([s.model_dump(mode="json", exclude={"deployment_id"}) for s in sites])
    else:
        click.echo(render.usage_table(sites))


# ---------------------------------------------------------------- deployments


def _finish(svc: Any, d: Any, as_json: bool, detach: bool) -> Any:
    """`--detach`: leave it to a worker. Else the service runs it here, showing progress,
    unless a live worker (`mmm up`, `mmm worker`) will."""
    if detach:
        return d
    printer = render.ProgressPrinter(quiet=as_json)
    printer.seen[d.id] = len(d.events)
    return svc.submit(d, on_change=printer)


def _report(d: Any, as_json: bool, show_id: bool = True) -> None:
    if as_json:
        render.emit_json(d.public())
        return
    if show_id:
        click.echo(d.id)
    from core.domain import DeploymentState

    if d.state is DeploymentState.WAITING_APPROVAL:
        click.echo(
            f"{d.id} waits at gate {d.waiting_at}: `mmm approve {d.id}` (another user)",
            err=True,
        )
    elif not d.active:
        click.echo(f"{d.id} {d.state.value}" + (f": {d.error}" if d.error else ""), err=True)


def _exit_for(d: Any) -> None:
    from core.domain import DeploymentState

    if d.state in (DeploymentState.FAILED, DeploymentState.ROLLED_BACK):
        sys.exit(1)


@cli.command()
@click.argument("model")
@click.argument("version")
@click.option("--endpoint", help="Endpoint name (or `endpoint:` in the file).")
@click.option("--strategy", help="all-at-once | blue-green | shadow")
@click.option("--region", "regions", multiple=True, help="Region (repeatable).")
@click.option(
    "-f", "--file", "file", type=click.Path(path_type=Path), help="Deployment file (YAML)."
)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--detach", is_flag=True, help="Only queue it; a worker runs it.")
@json_option
@pass_ctx
@handled
def deploy(
    c: Ctx,
    model: str,
    version: str,
    endpoint: str | None,
    strategy: str | None,
    regions: tuple[str, ...],
    file: Path | None,
    dry_run: bool,
    detach: bool,
    as_json: bool,
) -> None:
    """Start a deployment; prints its id."""
    svc = c.service()
    d = svc.deploy(model, version, endpoint, strategy, list(regions) or None, file, dry_run)
    if dry_run:
        steps = svc.plan(d)
        if as_json:
            render.emit_json(
                {
                    "dry_run": True,
                    "deployment": d.public(),
                    "plan": steps,
                    "spec": d.spec.model_dump(mode="json"),
                }
            )
        else:
            click.echo(
                f"plan for {model} v{version} -> {d.endpoint} ({d.strategy}), nothing changed:"
            )
            for i, s in enumerate(steps, 1):
                click.echo(f"  {i:2}. {s['stage']:<10} {s['step']}")
        return
    if not as_json:
        click.echo(f"{d.id} queued: {model} v{version} -> {d.endpoint} ({d.strategy})", err=True)
    d = _finish(svc, d, as_json, detach)
    _report(d, as_json)
    _exit_for(d)


@cli.command()
@click.argument("endpoint")
@click.option("--strategy", help="all-at-once (default) | blue-green | shadow")
@click.option("--detach", is_flag=True, help="Only queue it; a worker runs it.")
@json_option
@pass_ctx
@handled
def rollback(c: Ctx, endpoint: str, strategy: str | None, detach: bool, as_json: bool) -> None:
    """Put back the version that served before the endpoint's last successful deployment."""
    svc = c.service()
    d = svc.rollback(endpoint, strategy)
    if not as_json:
        click.echo(
            f"{d.id} queued: roll {d.endpoint} back to {d.model} v{d.version} ({d.strategy})",
            err=True,
        )
    d = _finish(svc, d, as_json, detach)
    _report(d, as_json)
    _exit_for(d)


@cli.command()
@click.argument("ref", required=False)
@click.option("--wait", is_flag=True, help="Block until it ends or waits for approval.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait at most.")
@json_option
@pass_ctx
@handled
def status(c: Ctx, ref: str | None, wait: bool, timeout: float | None, as_json: bool) -> None:
    """One deployment, or all."""
    svc = c.service()
    if ref is None:
        items = svc.deployments()
        if as_json:
            render.emit_json([d.public() for d in items])
        else:
            click.echo(render.deployments_table(items))
        return
    d = svc.get(ref)
    if wait and d.active:
        printer = render.ProgressPrinter(quiet=as_json)
        printer.seen[d.id] = len(d.events)
        d = svc.wait(d.id, timeout, on_change=printer)
    if as_json:
        render.emit_json(d.public())
    else:
        click.echo(render.describe(d))
    if wait:
        _exit_for(d)  # like `kubectl rollout status`: a script can branch on the outcome


@cli.command()
@click.argument("ref")
@click.option("--gate", help="Only if it waits at this gate.")
@click.option("--detach", is_flag=True, help="Do not run the next steps here.")
@json_option
@pass_ctx
@handled
def approve(c: Ctx, ref: str, gate: str | None, detach: bool, as_json: bool) -> None:
    """Pass the gate the deployment is waiting at."""
    svc = c.service()
    d = svc.approve(ref, gate)
    if not as_json:
        click.echo(f"{d.id} approved by {c.actor}", err=True)
    d = _finish(svc, d, as_json, detach)
    _report(d, as_json, show_id=False)
    _exit_for(d)


@cli.command()
@click.argument("ref")
@click.option("--reason", help="Why (kept in the audit history).")
@click.option("--detach", is_flag=True, help="Do not run the undo here.")
@json_option
@pass_ctx
@handled
def abort(c: Ctx, ref: str, reason: str | None, detach: bool, as_json: bool) -> None:
    """Stop a deployment and undo what it changed."""
    svc = c.service()
    d = svc.abort(ref, reason)
    if not as_json:
        click.echo(f"{d.id} aborting: undoing what it changed", err=True)
    d = _finish(svc, d, as_json, detach)
    _report(d, as_json, show_id=False)


@cli.command()
@click.argument("model")
@click.argument("version", required=False)
@click.option("--force", is_flag=True, help="Even while it takes live traffic.")
@click.option("--detach", is_flag=True, help="Only queue it; a worker runs it.")
@json_option
@pass_ctx
@handled
def retire(
    c: Ctx, model: str, version: str | None, force: bool, detach: bool, as_json: bool
) -> None:
    """Remove a model version (or all) from every place it is used."""
    svc = c.service()
    d = svc.retire(model, version, force)
    if not as_json:
        click.echo(
            f"{d.id} queued: retire {model} {'v' + str(version) if version else '(all versions)'}",
            err=True,
        )
    d = _finish(svc, d, as_json, detach)
    _report(d, as_json)
    _exit_for(d)


@cli.command()
@click.argument("target", required=False)
@json_option
@pass_ctx
@handled
def audit(c: Ctx, target: str | None, as_json: bool) -> None:
    """The audit history: who did what, newest first."""
    records = c.service().audit_log(target)
    if as_json:
        render.emit_json([r.model_dump() for r in records])
        return
    rows = [[r.at, r.actor, r.action, r.target, json.dumps(r.detail)] for r in records]
    click.echo(
        render.table(rows, ["at", "actor", "action", "target", "detail"]) if rows else "empty"
    )


# ---------------------------------------------------------------- processes


@cli.command()
@click.option(
    "--once",
    is_flag=True,
    help="Run until every deployment has ended or waits for a person, then exit.",
)
@pass_ctx
@handled
def worker(c: Ctx, once: bool) -> None:
    """Run the worker alone (several may share one store)."""
    import signal
    import threading

    svc = c.service()
    printer = render.ProgressPrinter()
    w = svc.worker(on_change=printer)
    with svc.notifications().running():
        if once:
            n = w.run_once()
            click.echo(f"advanced {n} deployment(s)", err=True)
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        click.echo(f"worker {w.name} running on {c.home}; Ctrl-C stops it", err=True)
        w.run_forever(stop)


@cli.command(name="migrate-state")
@pass_ctx
@handled
def migrate_state(c: Ctx) -> None:
    """Copy this workspace's SQLite state (state.db) into the DynamoDB table mmm.yaml names
    (backends.store: dynamodb, aws.table), history and all. Stop every worker first."""
    from core.bootstrap import build_store, load_workspace
    from core.store import StoreError
    from core.store.dynamodb import DynamoStore
    from core.store.migrate import copy_state
    from core.store.sqlite import SqliteStore

    ws = load_workspace(c.home)
    if ws.settings.backends.store != "dynamodb":
        _fail("set backends.store: dynamodb (and aws.table) in mmm.yaml: the copy goes there", 2)
    path = ws.home / "state.db"
    if not path.is_file():
        _fail(f"{path}: no SQLite state to copy", 2)
    try:
        dest = build_store(ws)
        assert isinstance(dest, DynamoStore)
        copied = copy_state(SqliteStore(path), dest)
    except StoreError as exc:
        _fail(str(exc), 1)
    click.echo(f"copied {copied.summary()} into DynamoDB table {ws.settings.aws.table}")


@cli.command()
@click.option(
    "--port", type=int, default=8080, show_default=True, help="Gateway port (0: any free)."
)
@click.option(
    "--bot-port",
    type=int,
    default=3000,
    show_default=True,
    help="The Slack bot's port, when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set.",
)
@pass_ctx
@handled
def up(c: Ctx, port: int, bot_port: int) -> None:
    """Run the local control plane: the worker, the serving gateway on 127.0.0.1:PORT, and
    the Slack bot on 127.0.0.1:BOT-PORT when Slack is configured."""
    from mmm_cli.control_plane import run_control_plane

    run_control_plane(c.service(), port, render.ProgressPrinter(), slack_config(), bot_port)


@cli.command()
@click.argument("endpoint")
@click.option(
    "--data", required=True, help='JSON: {"instances": [[...]]}, a list of rows, or one row.'
)
@click.option(
    "--url",
    envvar="MMM_GATEWAY_URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="The gateway (`mmm up`).",
)
@click.option("--region", default=None, help="The endpoint's region (default: the home region).")
@pass_ctx
@handled
def invoke(c: Ctx, endpoint: str, data: str, url: str, region: str | None) -> None:
    """Send one request to an endpoint; prints the response. With `serving: sagemaker` in the
    workspace, through the SageMaker runtime (boto3's credentials), else the local gateway."""
    from core.names import InvalidName, check_endpoint, check_region
    from core.strict_json import strict_loads

    try:  # a name no endpoint can have is refused here, not by the URL it would make
        check_endpoint(endpoint)
        if region is not None:
            check_region(region)
    except InvalidName as exc:
        _fail(str(exc), 2)
    try:
        body = strict_loads(data, _not_a_number, out_of_range=_out_of_range)
    except json.JSONDecodeError as exc:
        _fail(f"--data is not JSON ({exc.msg} at column {exc.colno})", 2)
    except (ValueError, RecursionError) as exc:  # NaN, a number too long, nesting too deep
        _fail(f"--data is not JSON mmm can send ({str(exc).split(';')[0]})", 2)
    ws = _workspace_if_any(c.home)
    if ws is not None and ws.settings.backends.serving == "sagemaker":
        from core.adapters.aws.runtime import invoke as on_sagemaker
        from core.adapters.aws.session import AwsClients

        clients = AwsClients(ws.settings.aws.region, ws.settings.aws.endpoint_url)
        render.emit_json(on_sagemaker(clients, endpoint, body, region))
        return
    from core.gateway.client import invoke as call

    render.emit_json(call(url, endpoint, body, region))


def _not_a_number(name: str) -> ValueError:
    # Python's json reads NaN and Infinity; JSON (and the gateway) has no such numbers
    return ValueError(f"{name} is not a JSON number")


def _out_of_range(text: str) -> ValueError:
    return ValueError(f"{text} is out of range for a number")


def _workspace_if_any(home: Path) -> Any:
    """The workspace at `home`, or None where there is none (invoke works without one)."""
    from core.bootstrap import SETTINGS_FILE, load_workspace

    return load_workspace(home) if (home / SETTINGS_FILE).exists() else None


@cli.command()
@click.option(
    "--keep-running", is_flag=True, help="Leave the gateway up at the end (Ctrl-C stops it)."
)
@pass_ctx
@handled
def demo(c: Ctx, keep_running: bool) -> None:
    """A complete local walk-through on a fresh workspace."""
    from mmm_cli.demo import run_demo

    run_demo(keep_running=keep_running)


@cli.command()
@click.option("--read-only", is_flag=True, help="Look only: every action is refused.")
@pass_ctx
@handled
def tui(c: Ctx, read_only: bool) -> None:
    """The Textual dashboard: models, endpoints, deployments, usage and audit, live."""
    import mmm_tui

    mmm_tui.run(c.service(), read_only)


@cli.command()
@click.option("--port", type=int, default=3000, show_default=True, help="Port on 127.0.0.1.")
@pass_ctx
@handled
def bot(c: Ctx, port: int) -> None:
    """The Slack bot alone: `/mmm` commands and buttons (HTTP; Socket Mode when
    SLACK_APP_TOKEN is set). Deployments it starts are run by `mmm up` or `mmm worker`."""
    config = slack_config()
    if config is None:
        _fail("Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET", 2)
    from mmm_bot import serve

    def ready(running: Any) -> None:
        click.echo(f"mmm bot: listening on {running.url}; Ctrl-C stops it", err=True)

    serve(c.service(), config, port, on_ready=ready)


def _not_utf8(args: list[str]) -> str | None:
    """The first argument (or MMM_HOME, MMM_USER) that is not UTF-8 text: such bytes reach
    Python as lone surrogates, which no name, record, log or database of mmm can hold."""
    named = [(f"argument {i}", a) for i, a in enumerate(args, start=1)]
    named += [(v, os.environ[v]) for v in ("MMM_HOME", "MMM_USER") if v in os.environ]
    for what, text in named:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"{what} is not UTF-8 text: {ascii(text)[:80]}"
    return None


def main() -> None:
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    from core.isolation import protect_environ

    protect_environ()  # our credentials are in our environment; model children are not us
    bad = _not_utf8(sys.argv[1:])
    if bad is not None:
        _fail(bad, 2)
    try:
        code = cli.main(prog_name="mmm", standalone_mode=False)
    except click.UsageError as exc:
        # one line, as every other error (click's own is three)
        where = f"mmm {exc.ctx.info_name}" if exc.ctx and exc.ctx.parent else "mmm"
        _fail(f"{exc.format_message()} (see `{where} --help`)", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Abort:
        click.echo("mmm: error: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
