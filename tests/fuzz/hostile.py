"""Hypothesis strategies of hostile input, shared by the fuzz tests.

Every strategy mixes values a user could mean (so acceptance is exercised too) with values
meant to break a reader: huge strings, deep nesting, wrong types, non-finite numbers,
unicode that reorders or hides text (RTL marks, NUL, lone surrogates where the format
can carry them), path-traversal names, and YAML's oddities (anchors and alias bombs, tags
such as `!!python/object`, duplicate and merge keys, several documents in one).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import yaml
from hypothesis import strategies as st

# ---------------------------------------------------------------- text

TRAVERSAL = (
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "/",
    "..\\x",
    "..\\..\\windows\\system32",
    "C:\\x",
    "\\\\server\\share",
    "..",
    ".",
    "./",
    "~",
    "~/x",
    "a/../../b",
    "x/",
    "%2e%2e%2fx",
    "..%2f..%2fx",
    "file:///etc/passwd",
    "x/../../../y",
    "....//x",
)

# Characters that reorder, hide or end text, or that only some readers call whitespace.
ODD_CHARS = (
    "\x00",
    "\x01",
    "\x1b[2J",
    "\x7f",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x85",
    "\u00a0",
    "\u200b",
    "\u200f",
    "\u202e",
    "\u2066",
    "\u2028",
    "\u2029",
    "\u3000",
    "\ufeff",
    "\ufffd",
    "\uffff",
    "\U0001f4a9",
    "é",
    "名",
    "ﷺ",
    "ה",
)
SURROGATES = ("\ud800", "\udfff", "\udcff", "\udc80")

# Words that mean something to YAML, JSON, shells or Python.
LOADED_WORDS = (
    "",
    " ",
    "null",
    "~",
    "None",
    "true",
    "no",
    "off",
    "yes",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    ".inf",
    "-.inf",
    ".nan",
    "1e400",
    "-0",
    "0x1f",
    "0o17",
    "1_000",
    "1:20",
    "12:30:00",
    "2001-12-14",
    "$(id)",
    "`id`",
    "${HOME}",
    "{{7*7}}",
    "%s%n",
    "'",
    '"',
    "\\",
    "-",
    "--",
    "--help",
    "-h",
    "--debug",
    "*",
    "&a",
    "*a",
    "!!python/object:os.system",
    "<<",
    "? ",
    "|",
    ">",
    "#",
    "@",
    "`",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "- ",
)


@functools.cache
def huge_text(min_size: int = 1_000, max_size: int = 100_000) -> st.SearchStrategy[str]:
    """One unit repeated: cheap to make, long to read."""
    units = st.sampled_from(["a", "é", "\u202e", "../", "[", "{", "-", "9", " ", "名", "\x00"])
    return st.builds(lambda unit, n: unit * n, units, st.integers(min_size, max_size))


@functools.cache
def odd_text(surrogates: bool = False, max_size: int = 30) -> st.SearchStrategy[str]:
    """Short text leaning on the odd characters, with any other code point now and then."""
    pieces: st.SearchStrategy[str] = st.one_of(
        st.sampled_from(ODD_CHARS),
        st.characters() if surrogates else st.characters(codec="utf-8"),
        st.sampled_from("abc-_.09AZ/\\:"),
    )
    if surrogates:
        pieces = st.one_of(pieces, st.sampled_from(SURROGATES))
    return st.lists(pieces, max_size=max_size).map("".join)


@functools.cache
def hostile_text(surrogates: bool = False, huge: bool = True) -> st.SearchStrategy[str]:
    """Any text a user or an attacker might type."""
    parts = [
        st.sampled_from(TRAVERSAL),
        st.sampled_from(LOADED_WORDS),
        odd_text(surrogates),
        st.builds(
            lambda a, b, c: a + b + c,
            st.sampled_from(["", "churn", "ok-name", *TRAVERSAL]),
            st.sampled_from(ODD_CHARS + TRAVERSAL + LOADED_WORDS),
            st.sampled_from(["", "x", "-1", *TRAVERSAL]),
        ),
    ]
    if huge:
        parts.append(huge_text())
    return st.one_of(*parts)


def near(valid: st.SearchStrategy[str], surrogates: bool = False) -> st.SearchStrategy[str]:
    """A valid value, or one a character away from valid (case, a separator, a length past
    the limit, an odd character inside)."""

    def spoil(text: str, how: int, where: int, extra: str) -> str:
        at = where % (len(text) + 1)
        if how == 0:
            return text.upper()
        if how == 1:
            return text[:at] + extra + text[at:]
        if how == 2:
            return text + "-"
        if how == 3:
            return "-" + text
        if how == 4:
            return text.replace("-", "--") if "-" in text else text + "__x"
        if how == 5:
            return (text or "a") * 70
        return " " + text + " "

    extras = st.sampled_from(
        ODD_CHARS + ("_", ".", "/", "-", " ", "..") + (SURROGATES if surrogates else ())
    )
    return st.one_of(
        valid,
        st.builds(spoil, valid, st.integers(0, 6), st.integers(0, 100), extras),
    )


MODEL_RE = r"[A-Za-z0-9]{1,10}([-_][A-Za-z0-9]{1,8}){0,3}"
ENDPOINT_RE = r"[a-z0-9]{1,12}(-[a-z0-9]{1,8}){0,3}"
REGION_RE = r"[a-z]{2}(-[a-z]{2,9}-[0-9])?"
VERSION_RE = r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}(-rc[0-9])?"


@functools.cache
def names(pattern: str, surrogates: bool = False) -> st.SearchStrategy[str]:
    """Names of a kind: valid by `pattern`, near it, or hostile."""
    return st.one_of(
        near(st.from_regex(pattern, fullmatch=True), surrogates),
        hostile_text(surrogates),
    )


# ---------------------------------------------------------------- numbers and JSON-like values

SPECIAL_NUMBERS = (
    0,
    -1,
    1,
    100,
    101,
    -0.0,
    0.5,
    1e-320,
    1e308,
    -1e308,
    2**31,
    2**63,
    2**64 + 1,
    10**30,
    -(10**30),
    math.nan,
    math.inf,
    -math.inf,
)


@functools.cache
def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(SPECIAL_NUMBERS),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
    )


@functools.cache
def scalars(surrogates: bool = False) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        numbers(),
        hostile_text(surrogates, huge=False),
    )


def nested(depth: int, leaf: Any = 1, kind: str = "list") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


@functools.cache
def values(surrogates: bool = False, deep: bool = True) -> st.SearchStrategy[Any]:
    """JSON-like values of any shape: wrong types, big containers and (`deep`) nesting past
    every limit."""
    tree = st.recursive(
        scalars(surrogates),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(hostile_text(surrogates, huge=False), inner, max_size=4),
        ),
        max_leaves=12,
    )
    big = st.one_of(st.builds(lambda n: list(range(n)), st.integers(200, 1_000)), huge_text())
    if not deep:
        return st.one_of(tree, tree, tree, big)
    deeply = st.builds(
        nested, st.integers(15, 80), scalars(surrogates), st.sampled_from(["list", "dict"])
    )
    return st.one_of(tree, tree, tree, big, deeply)


# ---------------------------------------------------------------- deployment files

STRATEGY_KINDS = ("all-at-once", "blue-green", "shadow")
GATES = (
    "before_merge",
    "before_provision",
    "before_rollout",
    "between_steps",
    "before_promote",
    "before_finalize",
)
# The keys README's "The deployment file" documents, with what each holds.
DEPLOYMENT_KEYS = (
    "endpoint",
    "regions",
    "waves",
    "instance",
    "autoscaling",
    "timeouts",
    "env",
    "gates",
    "strategy",
    "alarms",
    "analysis",
    "tolerance",
)
STRATEGY_KEYS = (
    "kind",
    "steps",
    "bake_s",
    "sample_percent",
    "min_samples",
    "traffic",
    "auto_approve",
    "then",
    "max_wait_s",
)


def _or_hostile(good: st.SearchStrategy[Any], surrogates: bool) -> st.SearchStrategy[Any]:
    # Two parts in three plausible, one hostile (nesting too deep comes from elsewhere: in
    # every field, it would be the first refusal of nearly every file).
    return st.one_of(good, good, values(surrogates, deep=False))


def _documented(
    fields: dict[str, st.SearchStrategy[Any]], surrogates: bool
) -> st.SearchStrategy[dict[Any, Any]]:
    """Mappings of some of `fields`' keys, each value plausible or hostile."""
    return st.fixed_dictionaries(
        {}, optional={k: _or_hostile(v, surrogates) for k, v in fields.items()}
    )


def _documented_or_one_more(
    fields: dict[str, st.SearchStrategy[Any]],
    more: st.SearchStrategy[Any],
    surrogates: bool,
) -> st.SearchStrategy[dict[Any, Any]]:
    """`_documented`, or that with one more key drawn from `more` (any value)."""
    documented = _documented(fields, surrogates)
    return st.one_of(
        documented,
        st.builds(
            lambda doc, key, value: {**doc, key: value}, documented, more, values(surrogates)
        ),
    )


@functools.cache
def _strategy_doc(surrogates: bool) -> st.SearchStrategy[Any]:
    steps = st.one_of(
        st.lists(st.integers(-5, 120), max_size=6),
        st.lists(st.integers(1, 100), min_size=1, max_size=5, unique=True).map(sorted),
    )
    fields = {
        "kind": st.sampled_from(STRATEGY_KINDS),
        "steps": steps,
        "bake_s": numbers(),
        "sample_percent": numbers(),
        "min_samples": numbers(),
        "traffic": st.one_of(
            st.just("live"),
            st.fixed_dictionaries({"replay": hostile_text(surrogates, huge=False)}),
        ),
        "auto_approve": st.one_of(st.booleans(), st.sampled_from(["yes", "on", 1, 0])),
        "then": st.sampled_from(["all-at-once", "blue-green", "shadow", "x"]),
        "max_wait_s": numbers(),
    }
    return _documented(fields, surrogates)


@functools.cache
def deployment_docs(surrogates: bool = False) -> st.SearchStrategy[dict[Any, Any]]:
    """Mappings shaped like a deployment file: documented keys with plausible or hostile
    values, now and then a key that is not documented."""
    small = st.dictionaries(
        st.sampled_from(["type", "count", "volume_gb", "min", "max", "startup_s",
                         "invocation_ms", "error_rate", "p99_latency_ms", "min_requests",
                         "alpha", "min_pairs", "target_invocations_per_instance", "x"]),
        st.one_of(st.integers(1, 3), numbers()),
        max_size=4,
    )  # fmt: skip
    fields: dict[str, st.SearchStrategy[Any]] = {
        "endpoint": names(ENDPOINT_RE, surrogates),
        "regions": st.lists(names(REGION_RE, surrogates), max_size=4),
        "waves": st.sampled_from(["region", "step", "both", ""]),
        "instance": small,
        "autoscaling": small,
        "timeouts": small,
        "env": st.dictionaries(
            st.one_of(
                st.sampled_from(["LOG_LEVEL", "DB_PASSWORD", "API_KEY", "MAX_NEW_TOKENS"]),
                hostile_text(surrogates, huge=False),
            ),
            st.one_of(
                st.sampled_from(["info", "${DB_PASSWORD}", "${X", "$X"]),
                hostile_text(surrogates, huge=False),
            ),
            max_size=3,
        ),
        "gates": st.lists(st.sampled_from((*GATES, "never", "")), max_size=4),
        "strategy": _strategy_doc(surrogates),
        "alarms": small,
        "analysis": small,
        "tolerance": numbers(),
    }
    more = st.one_of(hostile_text(surrogates, huge=False), st.sampled_from(STRATEGY_KEYS))
    return _documented_or_one_more(fields, more, surrogates)


def _alias_bomb(levels: int, width: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _merge_chain(levels: int, width: int) -> str:
    lines = ["m0: &m0 {a: 1}"]
    for i in range(1, levels + 1):
        lines.append(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}]}}")
    return "\n".join(lines) + "\n"


YAML_FRAGMENTS = (
    "endpoint: a\nendpoint: b\n",
    "strategy: {kind: shadow, kind: blue-green}\n",
    "endpoint: &e churn-scorer\nregions: [*e]\n",
    "endpoint: *undefined\n",
    "base: &b {endpoint: x}\n<<: *b\n",
    "<<: {endpoint: merged}\n",
    "<<: [1, 2]\n",
    "x: &r [*r]\n",
    "endpoint: !!python/object/apply:os.system ['id']\n",
    "endpoint: !!python/name:os.system\n",
    "!!python/object:__main__.X {}\n",
    "endpoint: !!binary aGVsbG8=\n",
    "env: {A: !!binary gICA}\n",
    "gates: !!set {before_rollout: null}\n",
    "gates: !!set [1]\n",
    "gates: !!omap [{a: 1}]\n",
    "endpoint: !!timestamp 2001-12-14\n",
    "endpoint: !!timestamp 2001-13-45\n",
    "endpoint: !!timestamp 0000-01-01\n",
    "tolerance: !!float abc\n",
    "tolerance: !!int abc\n",
    "strategy: {auto_approve: !!bool maybe}\n",
    "endpoint: !custom x\n",
    "endpoint: !<tag:example.com,2000:x> y\n",
    "%YAML 1.1\n---\nendpoint: a\n",
    "%YAML 2.0\n---\nendpoint: a\n",
    "%TAG !e! tag:example.com,2000:\n---\nendpoint: !e!x a\n",
    "endpoint: a\n---\nendpoint: b\n",
    "---\n...\n",
    "? [a, b]\n: 1\n",
    "? {a: 1}\n: 1\n",
    "1: one\n",
    "null: x\n",
    "endpoint:\n\t- a\n",
    "tolerance: .inf\n",
    "tolerance: -.inf\n",
    "tolerance: .nan\n",
    "tolerance: 1.0e+400\n",
    "tolerance: 1e400\n",
    "alarms: {min_requests: 1.0e+26}\n",
    "instance: {count: 0x10}\n",
    "instance: {count: 0o17}\n",
    "instance: {count: 1_0}\n",
    "instance: {count: 1:20}\n",
    "strategy: {auto_approve: yes}\n",
    "strategy: {auto_approve: on}\n",
    'endpoint: "\\0"\n',
    'endpoint: "\\ud800"\n',
    'env: {A: "\\ud800"}\n',
    'env: {"A\\nB": 1}\n',
    'env: {"SECRET\\nX": leaked}\n',
    '"endpoint\\n": x\n',
    '"\\u202eendpoint": x\n',
    'strategy: {traffic: {replay: "\\0"}}\n',
    "strategy: {kind: shadow, traffic: {replay: /etc/passwd}}\n",
    "strategy: {kind: shadow, traffic: {replay: ../../x.jsonl}}\n",
    "regions: ['../../x']\n",
    "regions: [local, local]\n",
    "regions: []\n",
    "x: " + "[" * 25 + "]" * 25 + "\n",
    "x: " + "{a: " * 25 + "1" + "}" * 25 + "\n",
    "x: " + "- " * 30 + "1\n",
    "\ufeffendpoint: bom\n",
    "endpoint: a # comment \u202e\n",
    "endpoint: |\n  multi\n  line\n",
    "endpoint: >\n  folded\n",
    "",
    "   \n",
    "[]\n",
    "- a\n",
    "just a string\n",
    "42\n",
    "{\n",
    "endpoint: 'unterminated\n",
)


def _dump(doc: Any) -> str:
    """YAML text of `doc`: libyaml's emitter, so the time goes to the reader under test, or
    PyYAML's own where a lone surrogate needs its escape (libyaml cannot write one)."""
    options: dict[str, Any] = {"allow_unicode": False, "sort_keys": False, "width": 1_000_000}
    try:
        return str(yaml.dump(doc, Dumper=yaml.CSafeDumper, **options))
    except UnicodeEncodeError:
        return str(yaml.dump(doc, Dumper=yaml.SafeDumper, **options))


def _big_fragment(kind: int, n: int) -> str:
    """Fragments too long to list as constants (a strategy's repr would hold them)."""
    if kind == 0:
        return f"instance: {{count: {'1' * n}}}\n"
    if kind == 1:
        return f"instance: {{count: 0x{'f' * n}}}\n"
    if kind == 2:
        return f"tolerance: !!float {'9' * n}\n"
    if kind == 3:
        return f"worker: {{max_attempts: {'9' * n}}}\n"
    return "x: " + "[" * n + "]" * n + "\n"


def fragments(catalogue: tuple[str, ...]) -> st.SearchStrategy[str]:
    one = st.one_of(
        st.sampled_from(catalogue),
        st.builds(_big_fragment, st.integers(0, 4), st.sampled_from([4299, 4301, 5000, 20_000])),
    )
    return st.lists(one, min_size=1, max_size=3).map("".join)


@functools.cache
def yaml_texts(surrogates: bool = False) -> st.SearchStrategy[str]:
    """YAML documents as text: dumps of deployment-shaped mappings, hostile fragments put
    together, alias bombs and merge chains, and arbitrary text."""
    dumped = deployment_docs(surrogates).map(lambda d: _dump(d))
    pieces = fragments(YAML_FRAGMENTS)
    bombs = st.one_of(
        st.builds(_alias_bomb, st.integers(1, 12), st.integers(2, 12)),
        st.builds(_merge_chain, st.integers(1, 14), st.integers(2, 9)),
    )
    return st.one_of(
        dumped,
        dumped,
        pieces,
        st.builds(lambda a, b: a + b, dumped, pieces),
        bombs,
        st.text(max_size=200),
        st.text(st.sampled_from([*":-[]{}&*!|>'\"%@`#,? \n\t", "a", "1"]), max_size=60),
    )


def file_bytes(texts: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Files: the texts as UTF-8, or as something else (UTF-16, Latin-1, with a NUL, cut in
    the middle of a character, over 1 MiB), or arbitrary bytes."""

    def encode(text: str, how: int) -> bytes:
        data = text.encode("utf-8", "surrogatepass")
        if how == 1:
            return text.encode("utf-16", "surrogatepass")
        if how == 2:
            return text.encode("latin-1", "replace")
        if how == 3:
            return data + b"\x00"
        if how == 4:
            return "é".encode()[:1] + data
        if how == 5:
            return b"\xef\xbb\xbf" + data
        if how == 6:
            return data + b"#" * (1024 * 1024 + 1 - len(data))
        return data

    return st.one_of(
        st.builds(encode, texts, st.sampled_from([0, 0, 0, 0, 1, 2, 3, 4, 5, 6])),
        st.binary(max_size=300),
    )


# ---------------------------------------------------------------- settings files

SETTINGS_KEYS = ("backends", "aws", "comet", "github", "defaults", "slack", "policy", "worker")


@functools.cache
def settings_docs(surrogates: bool = False) -> st.SearchStrategy[dict[Any, Any]]:
    """Mappings shaped like mmm.yaml; the backends stay local when given plausibly (a
    workspace whose settings are accepted is opened, and must not reach the network)."""
    text = hostile_text(surrogates, huge=False)

    def usually(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(good, good, good, text)

    people = st.lists(usually(st.sampled_from(["alice", "bob", "carol"])), max_size=3)
    fields: dict[str, st.SearchStrategy[Any]] = {
        "backends": st.fixed_dictionaries(
            {},
            optional={
                "store": st.sampled_from(["sqlite", "sqlite", "sqlite3", "", "SQLITE"]),
                "registry": st.sampled_from(["local", "local", "comet ", "x"]),
                "serving": st.sampled_from(["local", "local", "Local", "../local"]),
            },
        ),
        "aws": st.fixed_dictionaries(
            {},
            optional={
                "region": usually(st.sampled_from(["us-east-1", "eu-west-1"])),
                "bucket_prefix": usually(st.sampled_from(["mmm", "acme-ml"])),
                "role_arn": usually(st.just("arn:aws:iam::123456789012:role/x")),
                "table": usually(st.just("mmm-state")),
                "images": st.dictionaries(text, usually(st.just("img:1")), max_size=2),
            },
        ),
        "github": st.fixed_dictionaries(
            {},
            optional={
                "repo": usually(st.just("acme/backend")),
                "base_url": usually(st.just("https://github.example.com/api/v3")),
                "checks_timeout_s": usually(st.integers(1, 3600)),
            },
        ),
        "defaults": st.one_of(
            st.fixed_dictionaries({}, optional={"gates": st.lists(st.sampled_from(GATES))}),
            deployment_docs(surrogates),
        ),
        "slack": st.fixed_dictionaries(
            {},
            optional={
                "users": st.dictionaries(
                    usually(st.from_regex(r"U[0-9A-Z]{4,10}", fullmatch=True)),
                    usually(st.sampled_from(["alice", "bob"])),
                    max_size=3,
                ),
                "channel": usually(st.just("C0789GHI")),
            },
        ),
        "policy": st.fixed_dictionaries(
            {},
            optional={
                "allow_self_approval": st.one_of(st.booleans(), st.sampled_from(["yes", 1])),
                "deployers": people,
                "approvers": st.dictionaries(usually(st.just("churn")), people, max_size=3),
                "admins": people,
            },
        ),
        "worker": st.dictionaries(
            st.sampled_from(["lease_s", "poll_s", "max_attempts", "backoff_s", "x"]),
            st.one_of(st.integers(1, 30), numbers()),
            max_size=3,
        ),
    }
    return _documented_or_one_more(fields, hostile_text(surrogates, huge=False), surrogates)


SETTINGS_FRAGMENTS = (
    "backends: {store: sqlite}\nbackends: {store: sqlite}\n",
    "backends: !!python/object/apply:os.system ['id']\n",
    "worker: {lease_s: .inf}\n",
    "worker: {poll_s: .nan}\n",
    'slack: {users: {U1: "bob\\nmallory"}}\n',
    "slack: {users: {U1: &u alice, U2: *u}}\n",
    "policy: {admins: !!set {root: null}}\n",
    "defaults: {gates: [before_rollout], gates: []}\n",
    "defaults: {endpoint: '../../x'}\n",
    "defaults: [1, 2]\n",
    "defaults: null\n",
    "defaults: {strategy: {kind: shadow, traffic: {replay: /etc/passwd}}}\n",
    'aws: {images: {sklearn: "\\0"}}\n',
)


@functools.cache
def settings_texts(surrogates: bool = False) -> st.SearchStrategy[str]:
    dumped = settings_docs(surrogates).map(lambda d: _dump(d))
    pieces = fragments(SETTINGS_FRAGMENTS + YAML_FRAGMENTS)
    return st.one_of(dumped, dumped, pieces, st.builds(lambda a, b: a + b, dumped, pieces))


# ---------------------------------------------------------------- golden data (JSON Lines)

GOLDEN_LINES = (
    '{"input": [1, 2], "output": 3}',
    '{"input": {"a": 1, "b": "x", "c": null}, "output": [1, "two", true]}',
    '{"input": [NaN], "output": 1}',
    '{"input": [1], "output": Infinity}',
    '{"input": [1], "output": -Infinity}',
    '{"input": [1e400], "output": 1}',
    '{"input": [1], "output": 1, "output": 2}',
    '{"input": [1], "output": 1, "extra": 0}',
    '{"input": [], "output": 1}',
    '{"input": {}, "output": 1}',
    '{"input": [[1]], "output": 1}',
    '{"input": [{"a": 1}], "output": 1}',
    '{"input": "1,2", "output": 1}',
    '{"input": [1], "output": null}',
    '{"input": [1], "output": {"a": 1}}',
    '{"input": [1]}',
    '{"output": 1}',
    "[1, 2]",
    '"a string"',
    "null",
    "{",
    '{"input": [1], "output": 1',
    '{"input": ["\\ud800"], "output": "\\u0000"}',
    '{"input": ["\u2028"], "output": "\u202e"}',
    '{"input": [1], "output": 1}\u00a0',
    '\u0085{"input": [1], "output": 1}',
    '\u3000{"input": [1], "output": 1}',
    '\x1c{"input": [1], "output": 1}',
    '\ufeff{"input": [1], "output": 1}',
    '{"input": [1], "output": 1}\r',
    '\t{"input": [1], "output": 1}  ',
    "",
    "   ",
)


@functools.cache
def golden_lines(surrogates: bool = False) -> st.SearchStrategy[str]:
    generated = st.builds(
        lambda i, o: json.dumps({"input": i, "output": o}, ensure_ascii=False),
        st.one_of(
            st.lists(scalars(surrogates), max_size=5),
            st.dictionaries(hostile_text(surrogates, huge=False), scalars(surrogates), max_size=4),
            values(surrogates),
        ),
        st.one_of(scalars(surrogates), st.lists(scalars(surrogates), max_size=3), values()),
    )
    big = st.builds(
        lambda n, kind: (
            '{"input": [1], "output": ' + ("1" * n if kind else "[" * n + "]" * n) + "}"
        ),
        st.sampled_from([900, 1100, 4301, 5000]),
        st.booleans(),
    )
    return st.one_of(st.sampled_from(GOLDEN_LINES), generated, big, st.text(max_size=40))


@functools.cache
def golden_texts(surrogates: bool = False) -> st.SearchStrategy[str]:
    return st.builds(
        lambda lines, sep, end: sep.join(lines) + end,
        st.lists(golden_lines(surrogates), max_size=6),
        st.sampled_from(["\n", "\n", "\r\n", "\n\n", "\r", "\u2028"]),
        st.sampled_from(["", "\n"]),
    )
