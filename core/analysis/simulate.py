"""Simulated captures with a known truth: the error-rate suite and the power tables.

What "identical model" means here (both are simulated):

- exact: the shadow's outputs equal production's on every pair, as a model
  retrained with the same seed gives. Paired differences are exactly 0.
- noisy: both versions see the same truth and add independent noise, as a
  model retrained with another seed does. Numbers: truth ~ N(0, 1), each
  side adds N(0, 0.2^2) (correlation 0.96, paired differences SD 0.28);
  the two distributions are identical and the mean shift is 0. Labels:
  truth is one of 3 classes (shares 50/30/20 %), each side independently
  swaps 0.25 % of labels for another class (about 0.5 % disagreement).
  Probabilities: truth logits ~ N(0, 1.5^2) for 3 classes, each side adds
  N(0, 0.01^2) before the softmax (about 0.45 % of top classes differ).

Both are well inside every default tolerance, so a fail is a false alarm.
Shifted scenarios move the noisy shadow by a multiple of production's SD;
label-flip scenarios copy production's labels and swap a share of them.
Latency: both sides lognormal, median 20 ms, sigma 0.3, independent. No
errors: outputs are compared over every pair, so the error-rate test is
checked on its own (tests/unit/test_analysis_errors.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from core.analysis.engine import Batch, Evaluation, evaluate
from core.analysis.equivalence import Plan
from core.analysis.model import FloatArray, IntArray, OutputKind
from core.analysis.multiplicity import FAIL, INCONCLUSIVE, PASS
from core.analysis.operational import error_rate
from core.analysis.shape import PSI_PLAIN_RULE, psi_numbers
from core.spec import AnalysisSpec

NOISE_SD = 0.2  # numbers: each side's noise, in units of the truth's SD
LABEL_NOISE = 0.0025  # labels: share of each side's labels swapped at random
CLASS_SHARES = (0.5, 0.3, 0.2)
LOGIT_SD, LOGIT_NOISE = 1.5, 0.01  # probabilities: truth logits and each side's noise
_MAX_CELLS = 2_000_000  # values per chunk of runs, to bound memory


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: Literal["numbers", "labels", "probabilities"]
    shift_sd: float = 0.0  # numbers: shadow moved by this many production SDs
    flip: float = 0.0  # labels: share of pairs whose shadow label is swapped
    exact: bool = False  # shadow starts as an exact copy of production
    latency: bool = True


def numbers(
    rng: np.random.Generator, runs: int, n: int, shift_sd: float = 0.0, exact: bool = False
) -> tuple[FloatArray, FloatArray]:
    truth = rng.standard_normal((runs, n))
    production = truth + NOISE_SD * rng.standard_normal((runs, n))
    shadow = production.copy() if exact else truth + NOISE_SD * rng.standard_normal((runs, n))
    return production, shadow + shift_sd * np.sqrt(1 + NOISE_SD**2)


def _swap(rng: np.random.Generator, labels: IntArray, share: float, classes: int) -> IntArray:
    """Replace a random `share` of labels by another class, uniformly."""
    swap = rng.random(labels.shape) < share
    other = (labels + rng.integers(1, classes, size=labels.shape)) % classes
    out: IntArray = np.where(swap, other, labels)
    return out


def labels(
    rng: np.random.Generator, runs: int, n: int, flip: float = 0.0, exact: bool = False
) -> tuple[IntArray, IntArray]:
    k = len(CLASS_SHARES)
    truth = rng.choice(k, size=(runs, n), p=CLASS_SHARES).astype(np.int64)
    if exact or flip > 0:
        production = truth
        shadow = _swap(rng, production, flip, k) if flip > 0 else production.copy()
    else:
        production = _swap(rng, truth, LABEL_NOISE, k)
        shadow = _swap(rng, truth, LABEL_NOISE, k)
    return production, shadow


def probabilities(
    rng: np.random.Generator, runs: int, n: int, exact: bool = False, classes: int = 3
) -> tuple[FloatArray, FloatArray]:
    logits = LOGIT_SD * rng.standard_normal((runs, n, classes))
    production = _softmax(logits + LOGIT_NOISE * rng.standard_normal(logits.shape))
    if exact:
        return production, production.copy()
    return production, _softmax(logits + LOGIT_NOISE * rng.standard_normal(logits.shape))


def _softmax(z: FloatArray) -> FloatArray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: FloatArray = e / e.sum(axis=-1, keepdims=True)
    return out


def latencies(rng: np.random.Generator, runs: int, n: int, ratio: float = 1.0) -> FloatArray:
    out: FloatArray = 20.0 * ratio * np.exp(0.3 * rng.standard_normal((runs, n)))
    return out


def batch(scenario: Scenario, rng: np.random.Generator, runs: int, n: int) -> Batch:
    if scenario.kind == "numbers":
        p, s = numbers(rng, runs, n, scenario.shift_sd, scenario.exact)
        kind, classes = OutputKind.NUMBERS, 0
    elif scenario.kind == "labels":
        p, s = labels(rng, runs, n, scenario.flip, scenario.exact)  # type: ignore[assignment]
        kind, classes = OutputKind.LABELS, len(CLASS_SHARES)
    else:
        p, s = probabilities(rng, runs, n, scenario.exact)
        kind, classes = OutputKind.PROBABILITIES, 0
    no_errors = np.zeros((runs, n), dtype=bool)
    ms = (latencies(rng, runs, n), latencies(rng, runs, n)) if scenario.latency else (None, None)
    return Batch(kind, p, s, no_errors, no_errors, ms[0], ms[1], classes)


@dataclass(frozen=True)
class Rates:
    """Shares of runs: mmm's three outcomes, and the PSI rules scored on the same runs."""

    runs: int
    passed: float
    inconclusive: float
    failed: float
    psi_plain: float  # PSI > 0.1
    psi_calibrated: float  # PSI above its sample-size threshold at alpha


def run(
    scenario: Scenario,
    n: int,
    runs: int = 1000,
    seed: int = 0,
    spec: AnalysisSpec | None = None,
    look: int = 1,
) -> Rates:
    """Simulate `runs` captures of `n` pairs and score them with `evaluate` (a first look
    unless told otherwise)."""
    spec = spec or AnalysisSpec()
    rng = np.random.default_rng(seed)
    width = 3 if scenario.kind == "probabilities" else 1
    chunk = max(1, min(runs, _MAX_CELLS // max(n * width, 1)))
    verdicts: list[np.ndarray] = []
    plain: list[np.ndarray] = []
    calibrated: list[np.ndarray] = []
    done = 0
    while done < runs:
        size = min(chunk, runs - done)
        ev = evaluate(batch(scenario, rng, size, n), spec, look)
        verdicts.append(ev.verdict)
        psi, threshold = psi_of(ev)
        plain.append(psi > PSI_PLAIN_RULE)
        calibrated.append(psi > threshold)
        done += size
    v = np.concatenate(verdicts)
    return Rates(
        runs=runs,
        passed=float(np.mean(v == PASS)),
        inconclusive=float(np.mean(v == INCONCLUSIVE)),
        failed=float(np.mean(v == FAIL)),
        psi_plain=float(np.mean(np.concatenate(plain))),
        psi_calibrated=float(np.mean(np.concatenate(calibrated))),
    )


def sequential(
    scenario: Scenario,
    looks: tuple[int, ...] = (500, 2000, 8000),
    runs: int = 1000,
    seed: int = 0,
    spec: AnalysisSpec | None = None,
    spend: bool = True,
) -> Rates:
    """Analyse each run at growing sizes (look 1, 2, ...) on the same accumulating pairs, as
    an inconclusive shadow is; the outcome is the first that is not inconclusive. With
    `spend` False every look is scored as a first look (for comparison only)."""
    spec = spec or AnalysisSpec()
    rng = np.random.default_rng(seed)
    chunk = max(1, min(runs, _MAX_CELLS // max(looks[-1], 1)))
    finals: list[np.ndarray] = []
    done = 0
    while done < runs:
        size = min(chunk, runs - done)
        full_batch = batch(scenario, rng, size, looks[-1])
        final = np.full(size, INCONCLUSIVE)
        for k, n in enumerate(looks, start=1):
            verdict = evaluate(_prefix(full_batch, n), spec, look=k if spend else 1).verdict
            final = np.where(final == INCONCLUSIVE, verdict, final)
        finals.append(final)
        done += size
    v = np.concatenate(finals)
    nan = float("nan")
    return Rates(runs, float(np.mean(v == PASS)), float(np.mean(v == INCONCLUSIVE)),
                 float(np.mean(v == FAIL)), nan, nan)  # fmt: skip


def _prefix(b: Batch, n: int) -> Batch:
    """The first n pairs of every run."""

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[:, :n]

    return Batch(
        b.kind, b.production[:, :n], b.shadow[:, :n], b.production_error[:, :n],
        b.shadow_error[:, :n], cut(b.production_ms), cut(b.shadow_ms), b.classes,
    )  # fmt: skip


def psi_of(ev: Evaluation) -> tuple[FloatArray, FloatArray]:
    m = next(m for m in ev.metrics if m.name == "psi")  # the first: numbers, or top class
    return m.estimate, m.extra["threshold"]


def unpaired_psi_alarms(n: int, runs: int = 1000, seed: int = 0) -> float:
    """The drift-tool setting: two independent samples of one distribution, PSI > 0.1."""
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(runs):
        a, b = np.sort(rng.standard_normal(n)), np.sort(rng.standard_normal(n))
        psi, _bins = psi_numbers(a, b)
        alarms += psi > PSI_PLAIN_RULE
    return alarms / runs


IDENTICAL = (
    Scenario("numbers, exactly equal", "numbers", exact=True),
    Scenario("numbers, equal up to noise", "numbers"),
    Scenario("labels, exactly equal", "labels", exact=True),
    Scenario("labels, equal up to noise", "labels"),
    Scenario("probabilities, exactly equal", "probabilities", exact=True),
    Scenario("probabilities, equal up to noise", "probabilities"),
)
SHIFTS = tuple(Scenario(f"shift {d:g} SD", "numbers", shift_sd=d) for d in (0.05, 0.1, 0.2))
FLIPS = tuple(Scenario(f"{f:.0%} label flips", "labels", flip=f) for f in (0.01, 0.02, 0.05))


def exact_error_rate_size(n: int, base: float, margin: float, side: str, alpha: float) -> float:
    """Chance that the error-rate test passes (or fails) when the shadow's error rate is
    exactly `margin` above production's `base`, summed over every possible table."""
    pb = base + margin
    bmax = int(stats.binom.ppf(1 - 1e-12, n, pb)) + 2
    cmax = int(stats.binom.ppf(1 - 1e-12, n, base)) + 2 if base > 0 else 0
    b, c = np.meshgrid(np.arange(bmax + 1), np.arange(cmax + 1), indexing="ij")
    given_b = stats.binom.pmf(c, n - b, base / (1 - pb)) if base > 0 else (c == 0)
    pmf = (stats.binom.pmf(b, n, pb) * given_b).ravel()
    prod = np.zeros((b.size, n), dtype=bool)
    shad = np.zeros((b.size, n), dtype=bool)
    for row, (bi, ci) in enumerate(zip(b.ravel(), c.ravel(), strict=True)):
        shad[row, :bi] = True
        prod[row, bi : bi + ci] = True
    t = error_rate(prod, shad, margin, alpha, Plan(alpha, alpha))
    hit = (t.p_pass if side == "pass" else t.p_fail) <= alpha
    return float((pmf * hit).sum())
