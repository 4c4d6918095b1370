"""The conformance suite: properties every layer and loss class must have.

Each property is one small check. :func:`check_layer` and :func:`check_loss`
run them all on small float32 inputs, return a report when every check
passes, and otherwise raise one :class:`ConformanceError` that lists each
failed property with the numbers behind it (shapes, max abs and rel error,
the index where the error is worst).

The shared machinery (results, tolerances, comparisons, finite differences)
lives here; the layer checks are in ``_layer_checks`` and the loss checks in
``_loss_checks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "CheckResult",
    "ConformanceError",
    "ConformanceReport",
    "Tolerance",
    "run_checks",
]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one property check.

    Attributes:
        name: The property, e.g. ``"gradients"``.
        status: ``"passed"``, ``"failed"`` or ``"skipped"``.
        detail: The numbers for a pass or failure, or why it was skipped.
    """

    name: str
    status: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.status:<7} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


class ConformanceError(AssertionError):
    """A layer or loss class broke at least one property of the contract.

    An ``AssertionError``, so pytest reports it as a failed assertion. The
    message has one line per failed property, naming it and giving the
    numbers: shapes, max abs and rel error, tolerances.

    Attributes:
        subject: What was checked, e.g. ``"Dense(output_shape=4)"``.
        failures: The failed checks, in the order they ran.
        report: Every check's result, passed and skipped ones included.
    """

    def __init__(self, report: ConformanceReport) -> None:
        self.subject = report.subject
        self.failures = report.failed
        self.report = report
        lines = [
            f"{report.subject} failed {len(self.failures)} of "
            f"{len(report.results)} conformance checks:"
        ]
        lines += [f"  {f.name}: {f.detail}" for f in self.failures]
        super().__init__("\n".join(lines))

    @property
    def checks(self) -> list[str]:
        """The names of the failed properties."""
        return [f.name for f in self.failures]


@dataclass
class ConformanceReport:
    """Every check's result for one class and configuration."""

    subject: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> list[CheckResult]:
        """The checks that passed."""
        return [r for r in self.results if r.status == "passed"]

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def skipped(self) -> list[CheckResult]:
        """The checks that did not apply or were skipped on request."""
        return [r for r in self.results if r.status == "skipped"]

    def __str__(self) -> str:
        head = (
            f"{self.subject}: {len(self.passed)} passed, {len(self.failed)} "
            f"failed, {len(self.skipped)} skipped"
        )
        return "\n".join([head, *(f"  {r}" for r in self.results)])


@dataclass(frozen=True)
class Tolerance:
    """How close autodiff must come to central finite differences.

    An element passes when ``|autodiff - fd| <= atol + rtol * |fd|``. The
    defaults suit float32 and a step of ``1e-3``: rounding alone gives
    finite differences an error near ``1e-4`` times the output's size.

    Attributes:
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        step: The finite-difference step ``h`` in ``(f(v+h) - f(v-h)) / 2h``.
        max_elements: At most this many elements of each array are probed,
            chosen at random, to keep large parameters cheap.
    """

    rtol: float = 2e-2
    atol: float = 2e-3
    step: float = 1e-3
    max_elements: int = 24

    def __post_init__(self) -> None:
        for name in ("rtol", "atol", "step"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"Tolerance: {name} must be >= 0, got {value!r}")
        if self.step <= 0:
            raise ValueError(f"Tolerance: step must be > 0, got {self.step!r}")
        if self.max_elements < 1:
            raise ValueError(
                f"Tolerance: max_elements must be >= 1, got {self.max_elements!r}"
            )


class CheckFailed(Exception):
    """Raised inside a check to fail it with a message."""


class CheckSkipped(Exception):
    """Raised inside a check that does not apply to the subject."""


Check = Callable[[], str | None]


def run_checks(
    subject: str, checks: Mapping[str, Check], skip: Iterable[str]
) -> ConformanceReport:
    """Run ``checks`` in order and raise if any failed.

    A check returns a detail string (or ``None``) to pass, raises
    :class:`CheckSkipped` when it does not apply, and fails when it raises
    :class:`CheckFailed` or anything else: an unexpected exception from the
    subject is itself a conformance failure.

    Raises:
        ValueError: ``skip`` names a check that does not exist.
        ConformanceError: At least one check failed.
    """
    __tracebackhide__ = True
    skip = set(skip)
    unknown = sorted(skip - set(checks))
    if unknown:
        raise ValueError(
            f"skip: unknown check(s) {', '.join(unknown)}; the checks are "
            + ", ".join(checks)
        )
    report = ConformanceReport(subject)
    for name, check in checks.items():
        if name in skip:
            report.results.append(CheckResult(name, "skipped", "skipped on request"))
            continue
        try:
            detail = check()
        except CheckSkipped as reason:
            report.results.append(CheckResult(name, "skipped", str(reason)))
        except CheckFailed as failure:
            report.results.append(CheckResult(name, "failed", str(failure)))
        except Exception as error:
            message = f"raised {type(error).__name__}: {error}"
            report.results.append(CheckResult(name, "failed", message))
        else:
            report.results.append(CheckResult(name, "passed", detail or ""))
    if report.failed:
        raise ConformanceError(report)
    return report


def describe(cls: type, config: Mapping[str, Any]) -> str:
    """``Dense(output_shape=4)``: how a report names its subject."""
    shown = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"{cls.__name__}({shown})"


# Comparing arrays.


def max_errors(actual: Any, expected: Any) -> tuple[float, float, tuple[int, ...]]:
    """Max abs error, max rel error and the index of the worst abs error."""
    a = np.asarray(actual, np.float64)
    b = np.asarray(expected, np.float64)
    diff = np.abs(a - b)
    if diff.size == 0:
        return 0.0, 0.0, ()
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    rel = diff / np.maximum(np.abs(b), np.finfo(np.float32).tiny)
    return float(diff.max()), float(rel.max()), tuple(int(i) for i in worst)


def require_close(
    what: str,
    actual: Any,
    expected: Any,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> str:
    """Fail unless shapes match and values agree; return the error found."""
    shape_a, shape_b = np.shape(actual), np.shape(expected)
    if shape_a != shape_b:
        raise CheckFailed(f"{what}: shape {shape_a}, expected {shape_b}")
    abs_err, rel_err, index = max_errors(actual, expected)
    ok = np.allclose(
        np.asarray(actual, np.float64),
        np.asarray(expected, np.float64),
        rtol=rtol,
        atol=atol,
        equal_nan=True,
    )
    if not ok:
        got = np.asarray(actual)[index] if index else np.asarray(actual)
        want = np.asarray(expected)[index] if index else np.asarray(expected)
        raise CheckFailed(
            f"{what}: max abs error {abs_err:.3g}, max rel error {rel_err:.3g} "
            f"(worst at index {index}: {float(got):.6g} vs {float(want):.6g}; "
            f"shape {shape_a}; rtol={rtol:g}, atol={atol:g})"
        )
    return f"max abs error {abs_err:.2g}"


def require_identical(what: str, actual: Any, expected: Any) -> None:
    """Fail unless two pytrees have one structure, dtypes and bits."""
    struct_a: Any = jax.tree_util.tree_structure(actual)
    struct_b: Any = jax.tree_util.tree_structure(expected)
    if struct_a != struct_b:
        raise CheckFailed(f"{what}: structure {struct_a}, expected {struct_b}")
    paths = jax.tree_util.tree_leaves_with_path(expected)
    for (path, want), got in zip(paths, jax.tree_util.tree_leaves(actual), strict=True):
        name = jax.tree_util.keystr(path) or "value"
        got_np, want_np = np.asarray(got), np.asarray(want)
        if got_np.dtype != want_np.dtype or got_np.shape != want_np.shape:
            raise CheckFailed(
                f"{what}: {name} is {got_np.dtype}{list(got_np.shape)}, expected "
                f"{want_np.dtype}{list(want_np.shape)}"
            )
        if not np.array_equal(got_np, want_np, equal_nan=True):
            abs_err, _, index = max_errors(got_np, want_np)
            changed = int(np.sum(got_np != want_np))
            raise CheckFailed(
                f"{what}: {name} differs in {changed} of {want_np.size} "
                f"elements (max abs difference {abs_err:.3g} at index {index})"
            )


def require_finite(what: str, value: Any) -> None:
    """Fail if ``value`` (a pytree) holds NaN or inf."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(value):
        array = np.asarray(leaf)
        if not np.issubdtype(array.dtype, np.inexact):
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            name = jax.tree_util.keystr(path)
            raise CheckFailed(
                f"{what}{name} has {int(bad.sum())} non-finite of {array.size} "
                f"values (first {array[index] if index else array} at index "
                f"{index}, shape {array.shape})"
            )


# Finite differences.


def central_differences(
    fn: Callable[[jax.Array], jax.Array],
    value: jax.Array,
    indices: np.ndarray,
    step: float,
) -> np.ndarray:
    """Central differences of scalar ``fn`` at ``value`` for flat ``indices``.

    ``fn`` is called twice per index, so pass it compiled; the divisor is
    the step as actually taken in ``value``'s dtype, not the nominal one.
    """
    flat = np.asarray(value).reshape(-1)
    found = np.empty(len(indices), np.float64)
    for i, index in enumerate(indices):
        plus, minus = flat.copy(), flat.copy()
        plus[index] = flat[index] + flat.dtype.type(step)
        minus[index] = flat[index] - flat.dtype.type(step)
        up = float(fn(jnp.asarray(plus.reshape(np.shape(value)))))
        down = float(fn(jnp.asarray(minus.reshape(np.shape(value)))))
        found[i] = (up - down) / (float(plus[index]) - float(minus[index]))
    return found


def probe_indices(size: int, limit: int, key: jax.Array) -> np.ndarray:
    """All flat indices of an array of ``size``, or ``limit`` random ones."""
    if size <= limit:
        return np.arange(size)
    chosen = jax.random.choice(key, size, (limit,), replace=False)
    return np.sort(np.asarray(chosen))


def require_gradient(
    what: str,
    fn: Callable[[jax.Array], jax.Array],
    value: jax.Array,
    grad: jax.Array,
    tol: Tolerance,
    key: jax.Array,
) -> tuple[float, float]:
    """Compare autodiff ``grad`` of ``fn`` at ``value`` with finite differences.

    ``fn`` should be compiled (``jax.jit``): it runs twice per probed element.

    Returns:
        The max abs and max rel error over the probed elements.
    """
    indices = probe_indices(int(np.size(value)), tol.max_elements, key)
    numeric = central_differences(fn, value, indices, tol.step)
    analytic = np.asarray(grad, np.float64).reshape(-1)[indices]
    require_finite(f"{what}: autodiff gradient", analytic)
    abs_err, rel_err, worst = max_errors(analytic, numeric)
    allowed = tol.atol + tol.rtol * np.abs(numeric)
    if np.any(np.abs(analytic - numeric) > allowed):
        flat_index = int(indices[worst[0]])
        index = tuple(int(i) for i in np.unravel_index(flat_index, np.shape(value)))
        raise CheckFailed(
            f"{what} (shape {tuple(np.shape(value))}): autodiff and central "
            f"finite differences disagree, max abs error {abs_err:.3g}, max rel "
            f"error {rel_err:.3g}; worst at index {index}: autodiff "
            f"{analytic[worst]:.6g}, finite differences {numeric[worst]:.6g} "
            f"(step {tol.step:g}, rtol={tol.rtol:g}, atol={tol.atol:g}, "
            f"{len(indices)} of {np.size(value)} elements probed)"
        )
    return abs_err, rel_err
