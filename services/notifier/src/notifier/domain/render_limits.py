"""Render budgets: how long a tenant's template may run, how often it may loop and how much it may build.

A template is a program written by a tenant. The sandbox (rendering.py) charges every hook it has - each
loop iteration, each call, each operator that builds a string or a list, each filter, each value written out -
to the budget of the render in progress, and checks the size an operation would build *before* it builds it
(`'x'.ljust(50000000)`, `'%050000000d' % 1` and `|center(50000000)` never allocate). Going over any limit
aborts that render with `RenderLimitExceeded`, which names the limit; the caller turns it into a 422 (save,
preview) or a failed delivery (send), and the service goes on serving everyone else.

The deadline is wall time on purpose (like rate limits): it is about real seconds the process spends, and a
simulated clock jumping days must not abort a render. The budget of a render lives in a ContextVar, so a
render in a worker thread (previews) and one on the event loop (the dispatcher) never share one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace


@dataclass(frozen=True)
class RenderLimits:
    """Limits of one render (all parts of one message). Defaults leave a consolidated reminder of thousands of
    invoices far inside them: a shipped template renders in ~0.1 ms and loops once per invoice."""

    timeout_seconds: float = 0.2
    max_loop_iterations: int = 50_000
    max_range: int = 10_000
    max_string_chars: int = 200_000
    max_output_chars: int = 500_000

    @property
    def max_built_chars(self) -> int:
        """Everything the operations of one render build together: a loop that builds a new big string per
        iteration (and keeps it in a `{% set %}` block) runs out of this, not of memory."""
        return 4 * self.max_output_chars


class RenderLimitExceeded(SecurityError):
    """A render went over one of its limits; `limit` names it (for the 422 and the delivery's reason)."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(f"render limit exceeded: {detail} ({limit})")
        self.limit = limit


_CLOCK_EVERY = 64  # ticks between two looks at the clock (a look costs about as much as a tick)


class RenderBudget:
    """What one render has used so far."""

    __slots__ = ("_ticks", "built", "deadline", "iterations", "limits", "max_built")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.max_built = limits.max_built_chars
        self.deadline = time.perf_counter() + limits.timeout_seconds
        self.iterations = 0
        self.built = 0
        self._ticks = 0

    def tick(self) -> None:
        self._ticks += 1
        if self._ticks % _CLOCK_EVERY == 0:
            self.check_time()

    def check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise RenderLimitExceeded(
                "TEMPLATE_RENDER_TIMEOUT_SECONDS", f"rendering took longer than {self.limits.timeout_seconds:g} s"
            )

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """The items of a loop (or of a lazy filter's output), each counted."""
        limit = self.limits.max_loop_iterations
        for item in iterable:
            self.iterations += 1
            if self.iterations > limit:
                raise RenderLimitExceeded(
                    "TEMPLATE_MAX_LOOP_ITERATIONS", f"more than {limit} loop iterations in one render"
                )
            self.tick()
            yield item

    def allow(self, size: int, what: str) -> None:
        """Refuse an operation that would build more than one string (or container) may hold."""
        if size > self.limits.max_string_chars:
            raise RenderLimitExceeded(
                "TEMPLATE_MAX_STRING_CHARS",
                f"{what} would build {size} characters, more than {self.limits.max_string_chars}",
            )

    def charge(self, size: int, what: str, single: bool = True) -> None:
        """Count what an operation built; refuse it once the render has built too much altogether.
        `single=False` for what is written out (one `{{ }}` may print a captured block as long as the output)."""
        if single:
            self.allow(size, what)
        self.built += size
        if self.built > self.max_built:
            self.over_built()
        self.tick()

    def over_built(self) -> None:
        raise RenderLimitExceeded(
            "TEMPLATE_MAX_OUTPUT_CHARS", f"the template built more than {self.max_built} characters in one render"
        )


_current: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


current = _current.get  # the render's budget, None outside a render


def start(limits: RenderLimits) -> Any:
    """Open a render's budget; pass the result to `finish`."""
    return _current.set(RenderBudget(limits))


def finish(token: Any) -> None:
    _current.reset(token)


_SCALARS = (int, float, bool, type(None))
MAX_NESTING = 32  # containers in containers: a reminder needs three levels (invoices, an invoice, its fees)


def _too_deep() -> RenderLimitExceeded:
    return RenderLimitExceeded("nesting", f"lists or dicts nested more than {MAX_NESTING} deep")


def _scalar_size(value: Any) -> int:
    return (value.bit_length() * 3) // 10 + 2 if type(value) is int else 24


def size_of(value: Any, cap: int, budget: RenderBudget | None = None) -> int:
    """About how many characters `str(value)` would be, walking containers without building anything, and
    stopping as soon as the count passes `cap` (so the walk itself is bounded). A list of the same list a
    thousand times counts a thousand times: that is what printing or comparing it would cost."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, _SCALARS):
        return _scalar_size(value)
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    steps = 0
    while stack:
        item, depth = stack.pop()
        steps += 1
        if budget is not None and steps % 1024 == 0:
            budget.check_time()
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, _SCALARS):
            total += _scalar_size(item)
        elif isinstance(item, dict | list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            if total > cap:
                return total
            if depth >= MAX_NESTING:
                raise _too_deep()
            stack.extend((v, depth + 1) for v in item)  # a dict's keys, or the items
            if isinstance(item, dict):
                stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, Namespace):
            if depth >= MAX_NESTING:
                raise _too_deep()
            stack.append((object.__getattribute__(item, "_Namespace__attrs"), depth + 1))
        else:
            total += 64  # an object's repr (a date, a Decimal, a loop): small and fixed
        if total > cap:
            return total
    return total
