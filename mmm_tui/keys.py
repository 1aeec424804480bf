"""The key map, in one place: the `?` screen shows it and the README lists it."""

from __future__ import annotations

# (keys, what they do, where they apply)
KEYMAP: tuple[tuple[str, str, str], ...] = (
    ("1 … 5", "Deployments, Models, Endpoints, Usage, Audit", "everywhere"),
    (
        "Enter / click",
        "drill down: a deployment's detail, a model's usage, an endpoint's deployments",
        "tables",
    ),
    ("Escape", "clear the filter, then go back", "everywhere"),
    ("/", "filter the table as you type (over every row, not only those loaded)", "tables"),
    ("↑ ↓ PgUp PgDn Home End, j k g G", "move", "tables"),
    ("n", "deploy: a form with the dry-run plan before it submits", "Deployments, Endpoints"),
    ("d", "deploy the highlighted model version", "Models"),
    ("a", "approve the deployment waiting at a gate (confirmation first)", "Deployments, detail"),
    ("x", "abort: shows what will be undone, then asks", "Deployments, detail"),
    ("r", "retire the highlighted model version: lists the usage sites removed", "Models"),
    ("Ctrl+R", "read again now (the screen follows the change feed anyway)", "everywhere"),
    ("Ctrl+P", "command palette: every view and action", "everywhere"),
    ("?", "this list", "everywhere"),
    ("q / Ctrl+Q", "quit", "everywhere"),
)

FILTER_HELP = (
    "Filter words in Deployments: state:failed, state:waiting, model:NAME, endpoint:NAME, "
    "kind:retire, active; other text matches id, model, version or endpoint."
)
