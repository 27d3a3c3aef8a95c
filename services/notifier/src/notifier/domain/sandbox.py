"""The Jinja2 sandbox tenants' templates run in, with a budget on everything a template can spend.

Jinja's ImmutableSandboxedEnvironment already refuses `_` attributes (the `''.__class__.__mro__` /
`cycler.__init__.__globals__` route of template-injection CVEs such as ERPNext's CVE-2025-66434), unsafe
callables and mutating lists and dicts. What it does not bound is work: nested `range(100000)` loops froze the
notifier, and `'x'.ljust(50000000)`, `'%050000000d' % 1` or `|center(50000000)` each allocated 50 MB. Here every
hook the sandbox has - calls, operators, filters, `~`, literals, loop iterations, written values, the output -
charges the render's budget (render_limits.py), and what an operation would build is checked before it is
built. Jinja compiles loops, `~` and literals to plain Python, so the code generator routes those through
hooks too. A render over budget stops within its deadline with RenderLimitExceeded naming the limit.
"""

from __future__ import annotations

import operator
import re
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from functools import update_wrapper
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, generate_lorem_ipsum, pass_context
from markupsafe import Markup

from notifier.domain import render_limits
from notifier.domain.render_limits import RenderBudget, RenderLimitExceeded, RenderLimits, size_of


class _BudgetedCode(CodeGenerator):
    """Routes through the sandbox what Jinja compiles to plain Python: `~` concatenation and list, tuple and
    dict literals (a literal of literals doubled in a loop is a gigabyte to print or compare)."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.budgeted_concat(context, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.budgeted_container(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target (`{% for a, b in ... %}`), not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.budgeted_container(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.budgeted_container(")
        super().visit_Dict(node, frame)
        self.write(")")


_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[diouxXeEfFgGcrsa%]")
_DIGITS = re.compile(r"\d+")


def _check_printf(fmt: str | bytes, budget: RenderBudget) -> None:
    """`'%050000000d' % 1`: refuse a width or precision that alone is too big, and `*` (width from the data)."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else str(fmt)
    for m in _PRINTF_FIELD.finditer(text):
        for number in m.groups():
            if number == "*":
                raise SecurityError("'*' widths are not allowed in templates")
            if number and (len(number) > 9 or int(number) > budget.limits.max_string_chars):
                budget.allow(10**9 if len(number) > 9 else int(number), f"the format field {m.group(0)[:20]!r}")


def _check_format_spec(spec: str, budget: RenderBudget) -> None:
    """`'{:>50000000}'.format(1)`: every number in a format spec is a width, a precision or a single fill
    character, so refusing big ones refuses nothing legitimate."""
    for number in _DIGITS.findall(spec):
        if len(number) > 9 or int(number) > budget.limits.max_string_chars:
            budget.allow(10**9 if len(number) > 9 else int(number), f"the format spec {spec[:20]!r}")


def _budget(limits: RenderLimits) -> RenderBudget:
    """The render's budget; outside a render (compile-time folding, a direct call) the sizes still apply."""
    return render_limits.current() or RenderBudget(limits)


class _BoundedFormatter(SandboxedFormatter):
    _env: Sandbox

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = _budget(self._env.limits)
        _check_format_spec(format_spec, budget)
        budget.allow(size_of(value, budget.limits.max_string_chars, budget), "str.format")
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    pass


def _width(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, default: Any, index: int = 0) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _check_str_method(
    budget: RenderBudget, owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Before a string method runs: what it would build. Returns the arguments to call it with."""
    what = f"{type(owner).__name__}.{name}()"
    if name in ("ljust", "rjust", "center", "zfill"):
        budget.allow(max(len(owner), _int(_width(args, kwargs, "width", 0))), what)
    elif name == "expandtabs":
        tab = b"\t" if isinstance(owner, bytes) else "\t"
        budget.allow(len(owner) + owner.count(tab) * max(_int(_width(args, kwargs, "tabsize", 8)), 0), what)  # type: ignore[arg-type]
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str | bytes) and isinstance(args[1], str | bytes):
        old, new = args[0], args[1]
        count = _int(_width(args, kwargs, "count", -1, 2)) if len(args) > 2 or "count" in kwargs else -1
        hits = owner.count(old) if old else len(owner) + 1  # type: ignore[arg-type]
        if count >= 0:
            hits = min(hits, count)
        budget.allow(len(owner) + hits * max(0, len(new) - len(old)), what)
    elif name == "join" and args:
        items = list(budget.iterate(args[0]))
        size = sum(len(i) if isinstance(i, str | bytes) else 0 for i in items) + len(owner) * max(0, len(items) - 1)
        budget.allow(size, what)
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) if isinstance(v, str | bytes) else 1 for v in args[0].values()), default=1)
        budget.allow(len(owner) * max(1, longest), what)
    elif name == "encode":
        budget.allow(len(owner) * 4, what)
    return args


# Filters that turn their input into text: the input must be printable within the limits.
_STRINGIFYING = frozenset(
    [
        "string",
        "e",
        "escape",
        "forceescape",
        "safe",
        "upper",
        "lower",
        "title",
        "capitalize",
        "trim",
        "striptags",
        "urlencode",
        "urlize",
        "wordcount",
        "truncate",
        "xmlattr",
        "filesizeformat",
    ]
)


_SIZED = _STRINGIFYING | {"center", "indent", "wordwrap", "format", "replace", "tojson", "pprint"}


def _filter_guard(
    budget: RenderBudget, name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, tuple[Any, ...]]:
    """Before a filter runs: what it would build (`|center(50000000)` never allocates). Returns the value and
    arguments to call it with (an iterable that had to be counted is passed on as the list it became)."""
    cap = budget.limits.max_string_chars
    what = f"|{name}"
    if name == "join":
        items = list(budget.iterate(value))
        size = sum(size_of(i, cap, budget) for i in items)
        budget.allow(size + len(str(_width(args, kwargs, "d", ""))) * max(0, len(items) - 1), what)
        return items, args
    if name == "sum":
        start = _width(args, kwargs, "start", 0, 1)
        if isinstance(start, int | float):
            return value, args  # adding numbers builds nothing
        items = list(budget.iterate(value))  # `[[1] * 10000] * 10000 | sum(start=[])`: a list of 10^8
        budget.allow(size_of(start, cap, budget) + sum(size_of(i, cap, budget) for i in items), what)
        return items, args
    if name == "batch":
        budget.allow(_int(_width(args, kwargs, "linecount", 0)), what)
        return value, args
    if name == "slice":
        budget.allow(_int(_width(args, kwargs, "slices", 0)), what)
        return value, args
    if name not in _SIZED:
        return value, args  # `|length`, `|first`, `|map`…: nothing printed, nothing built from the value's size
    size = len(value) if isinstance(value, str) else size_of(value, cap, budget)
    if name == "center":
        budget.allow(max(size, _int(_width(args, kwargs, "width", 80))), what)
    elif name == "indent":
        width = _width(args, kwargs, "width", 4)
        per_line = len(width) if isinstance(width, str) else _int(width)
        lines = (value.count("\n") + 1) if isinstance(value, str) else size
        budget.allow(size + lines * per_line, what)
    elif name == "wordwrap":
        wrap = _width(args, kwargs, "wrapstring", None, 2) or "\n"
        budget.allow(size * (1 + len(str(wrap))), what)
    elif name == "format":
        if isinstance(value, str):
            _check_printf(value, budget)
        budget.allow(size + size_of((args, kwargs), cap, budget), what)
    elif name == "replace":
        old, new = str(_width(args, kwargs, "old", "", 0)), str(_width(args, kwargs, "new", "", 1))
        hits = str(value).count(old) if old and size <= cap else size + 1
        budget.allow(size + hits * max(0, len(new) - len(old)), what)
    elif name == "tojson":
        indent = _width(args, kwargs, "indent", None)
        budget.allow(size * (1 + render_limits.MAX_NESTING * max(0, _int(indent))), what)
    elif name == "pprint":
        budget.allow(size * (1 + render_limits.MAX_NESTING), what)
    elif name == "urlize":
        extra = sum(len(str(kwargs.get(k) or "")) for k in ("target", "rel"))
        budget.allow(size * (2 + extra), what)
    elif name in _STRINGIFYING:
        budget.allow(size, what)
    return value, args


def _checked_result(budget: RenderBudget, result: Any, what: str, shallow: bool = False) -> Any:
    """After a call or a filter: count the string it built, bound the container, count a lazy result's items.
    `shallow`: a filter's list holds what its input held (no filter doubles a structure; literals, `*`, `+`,
    dict() and namespace() can, and are measured in full), so only its own length counts."""
    if isinstance(result, str | bytes):
        budget.charge(len(result), what)
    elif shallow and isinstance(result, list | tuple | dict | set | frozenset):
        budget.allow(len(result), what)
    elif isinstance(result, list | tuple | dict | set | frozenset | Namespace):
        budget.allow(size_of(result, budget.limits.max_string_chars, budget), what)
    elif isinstance(result, Iterator) and not isinstance(result, LoopContext):
        return budget.iterate(result)
    return result


def _budgeted_filter(name: str, func: Callable[..., Any], limits: RenderLimits) -> Callable[..., Any]:
    """A filter that charges the render's budget. It takes the context, so Jinja never folds it as a constant
    at compile time - `{{ [1]|slice(50000000)|list }}` would otherwise run while a template is *saved*."""
    kind = getattr(getattr(func, "jinja_pass_arg", None), "name", None)

    def budgeted(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget(limits)
        budget.tick()
        value, args = _filter_guard(budget, name, value, args, kwargs)
        if kind == "context":
            result = func(context, value, *args, **kwargs)
        elif kind == "eval_context":
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif kind == "environment":
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return _checked_result(budget, result, f"|{name}", shallow=True)

    budgeted.__name__ = getattr(func, "__name__", name)
    budgeted.__doc__ = func.__doc__
    return pass_context(budgeted)  # not update_wrapper: it would copy the filter's own pass_* marker


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox (no `_` attributes, no unsafe callables, no mutation of lists and dicts) with every hook
    charging the render's budget (render_limits.py)."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])
    code_generator_class = _BudgetedCode

    def __init__(self, limits: RenderLimits, **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits
        self.concat = self._bounded_concat  # type: ignore[method-assign]  # every buffer and the output
        self.finalize = self._written  # every value a `{{ }}` writes out
        self.globals["range"] = self._range
        self.globals["lipsum"] = self._lipsum
        # cycler(x, x).items doubles a structure without a literal; loop.cycle() does what reminders need.
        del self.globals["cycler"]
        self.filters = {name: _budgeted_filter(name, f, limits) for name, f in self.filters.items()}

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False
    ) -> str:
        """Every `{% for %}` iterates through `budgeted_loop`, so iterations count whatever is iterated (a list
        from the context has no hook of its own, and a loop over it can nest ten deep)."""
        for loop in list(source.find_all(nodes.For)):
            call = nodes.Call(nodes.EnvironmentAttribute("budgeted_loop"), [loop.iter], [], None, None)
            loop.iter = call.set_lineno(loop.lineno).set_environment(self)
        return super()._generate(source, name, filename, defer_init=defer_init)

    # ------------------------------------------------------------ hooks the compiled templates call

    def budgeted_loop(self, iterable: Any) -> Any:
        budget = render_limits.current()
        return iterable if budget is None else budget.iterate(iterable)

    def budgeted_concat(self, context: Context, values: tuple[Any, ...]) -> str:
        budget = _budget(self.limits)
        cap = self.limits.max_string_chars
        size = sum(len(v) if isinstance(v, str) else size_of(v, cap, budget) for v in values)
        budget.charge(size, "'~'")
        return markup_join(values) if context.eval_ctx.autoescape else str_join(values)

    def budgeted_container(self, value: Any) -> Any:
        if value:
            budget = _budget(self.limits)
            budget.allow(size_of(value, self.limits.max_string_chars, budget), "a list or dict")
        return value

    def _written(self, value: Any) -> Any:
        """What a `{{ }}` writes out is counted: an HTML part escapes it into a new string, and a `{% set %}`
        block keeps what it wrote until it ends. In a text part a string is written as it is (no copy), so
        only what printing would build (a list, a number) counts there."""
        budget = render_limits.current()
        if budget is None:
            return value
        if type(value) is str or type(value) is Markup:
            if not self.autoescape:
                return value
            budget.built += len(value)
        else:
            budget.built += size_of(value, self.limits.max_string_chars, budget)
        if budget.built > budget.max_built:
            budget.over_built()
        return value

    def _bounded_concat(self, pieces: Iterable[str]) -> str:
        # The pieces are references (literals, and values already counted by _written): listing them costs no
        # memory, joining them would.
        parts = pieces if isinstance(pieces, list) else list(pieces)
        if sum(map(len, parts)) > self.limits.max_output_chars:
            raise RenderLimitExceeded(
                "TEMPLATE_MAX_OUTPUT_CHARS",
                f"the output would be longer than {self.limits.max_output_chars} characters",
            )
        return "".join(parts)

    def _range(self, *args: int) -> range:
        try:
            numbers = range(*args)
            n = len(numbers)
        except OverflowError:
            n = sys.maxsize
        if n > self.limits.max_range:
            raise RenderLimitExceeded(
                "TEMPLATE_MAX_RANGE", f"range() of {n} numbers, more than {self.limits.max_range}"
            )
        return numbers

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if n > 10 or max > 200:
            raise RenderLimitExceeded("lipsum", "lipsum() of more than 10 paragraphs of 200 words")
        return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))

    # ------------------------------------------------------------ the sandbox's own hooks

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`company.company_name` on the context's plain dicts: the key first. Jinja tries the Python
        attribute first and only falls back to the item after an AttributeError - an exception per lookup,
        a tenth of a reminder's render. Items of a dict are data, never reachable internals, so nothing the
        sandbox guards is skipped; anything else (and a name that is not a key) takes the sandbox's path."""
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def make_globals(self, d: Any) -> Any:
        """A plain dict instead of Jinja's ChainMap over the environment's globals: every render (and every
        include/extends inside it) copies the globals into a new context, and iterating a ChainMap runs in
        Python - a tenth of the CPU of rendering a reminder. Our environments' globals never change after
        they are built, which is the case the ChainMap exists for."""
        return {**self.globals, **(d or {})}

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's str.format sandboxing, with a formatter that checks each field's spec and value first."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        str_type = type(owner)
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter = (
            _BoundedEscapeFormatter(self, escape=owner.escape) if isinstance(owner, Markup) else _BoundedFormatter(self)
        )

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(owner, args, kwargs))

        return update_wrapper(wrapper, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(__obj, "__func__", None) is Sandbox.budgeted_loop:  # a `{% for %}` starting: counted there
            return __obj(*args)
        budget = _budget(__self.limits)
        budget.tick()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop going one level down
            args = (budget.iterate(args[0]), *args[1:])
        else:
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, str | bytes):
                args = _check_str_method(budget, owner, getattr(__obj, "__name__", ""), args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return _checked_result(budget, result, f"{getattr(__obj, '__name__', 'a call')}()")

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        budget = _budget(self.limits)
        budget.tick()
        cap = self.limits.max_string_chars
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise SecurityError("exponent too large")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * max(right, 0) > _MAX_INT_BITS:
                raise RenderLimitExceeded("numbers", "a number of more than 10,000 digits")
            return operator.pow(left, right)
        if operator_name == "%":
            if not isinstance(left, str | bytes):
                return operator.mod(left, right)
            _check_printf(left, budget)
            budget.allow(len(left) + size_of(right, cap, budget), "'%' formatting")
            result = operator.mod(left, right)
            budget.charge(len(result), "'%' formatting")
            return result
        if operator_name == "+":
            if isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):
                budget.allow(size_of(left, cap, budget) + size_of(right, cap, budget), "'+'")
            return _checked_result(budget, operator.add(left, right), "'+'")
        # "*": repetition of a sequence, or a product of numbers
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise RenderLimitExceeded("numbers", "a number of more than 10,000 digits")
            return operator.mul(left, right)
        seq, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int) and times > 1:
            budget.allow(times * size_of(seq, cap, budget), "'*' repetition")
        return _checked_result(budget, operator.mul(left, right), "'*'")


_MAX_INT_BITS = 33_220  # 10,000 decimal digits
