"""The sandbox message templates run in, with limits on what one render may cost.

Jinja2's sandbox keeps a template away from Python's internals but not from the machine: `{{
'a' * 50000000 }}` builds 50 MB, and three nested loops over a long string spin for minutes.
Here every render runs against a `RenderBudget` (bound by `metered`): a deadline, a number of
steps (loop iterations, calls, attribute look-ups, operators, filters) and a number of
characters written, including what `{% set %}` blocks capture. And every operation that can
make a value much bigger than its inputs is checked *before* it runs, so nothing large is ever
allocated: repetition (`*`), powers, `%` and `str.format` with wide fields, the padding,
joining and replacing filters and string methods. `~` joins, loops and every piece of output go
through filters of ours added when a template is compiled (`meter_template`).

A template that goes over raises `RenderLimit`; the caller turns it into a message for the
field being rendered."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Sized
from contextvars import ContextVar
from dataclasses import dataclass

from jinja2 import nodes, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

# Limits of one render (one field of one message).
MAX_STEPS = 100_000  # loop iterations, calls, look-ups, operators and filters
MAX_SECONDS = 1.0
MAX_WRITTEN = 1_000_000  # characters written, captured blocks included
MAX_VALUE = 200_000  # characters (or items) of any one value a template makes
MAX_WIDTH = 1_000  # of a padded or formatted field
MAX_INT_BITS = 256  # numbers beyond 10^77 are no one's invoice

TOO_SLOW = "This template takes too long to render (loops or repetition too large)."
TOO_BIG = "This template makes text that is too long."


class RenderLimit(Exception):
    """A render went over its budget or tried to make too large a value."""


@dataclass
class RenderBudget:
    deadline: float
    steps: int = 0
    written: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS or time.monotonic() > self.deadline:
            raise RenderLimit(TOO_SLOW)

    def write(self, size: int) -> None:
        self.written += size
        if self.written > MAX_WRITTEN:
            raise RenderLimit(TOO_BIG)


_budget: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


class metered:
    """`with metered():` renders in it run against a fresh budget."""

    def __enter__(self) -> RenderBudget:
        budget = RenderBudget(deadline=time.monotonic() + MAX_SECONDS)
        self._token = _budget.set(budget)
        return budget

    def __exit__(self, *exc) -> None:
        _budget.reset(self._token)


def _step() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step()


def _size(value) -> int:
    return len(value) if isinstance(value, Sized) else len(str(value))


def _ensure(size: int, limit: int = MAX_VALUE) -> None:
    if size > limit:
        raise RenderLimit(TOO_BIG)


def _width(value) -> int:
    """A width or count argument, checked."""
    number = int(value)
    _ensure(abs(number), MAX_WIDTH)
    return number


# %-formatting and str.format: widths and precisions in the format string
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD = re.compile(r"\{([^{}]*)(\{)?")


def _check_percent_format(text: str) -> None:
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise RenderLimit(TOO_BIG)


def _check_brace_format(text: str) -> None:
    for spec, nested in _FORMAT_FIELD.findall(text):
        _, _, format_spec = spec.partition(":")
        if nested and ":" in spec:
            raise RenderLimit(TOO_BIG)  # a width given as an argument: {:{}}
        if any(int(number) > MAX_WIDTH for number in re.findall(r"\d+", format_spec)):
            raise RenderLimit(TOO_BIG)


def _check_join(items, separator) -> None:
    items = list(items)
    _ensure(len(items))
    _ensure(sum(_size(item) for item in items) + len(str(separator)) * len(items))


def _check_replace(text, old, new, count=-1) -> None:
    text, old, new = str(text), str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if count is not None and int(count) >= 0:
        found = min(found, int(count))
    _ensure(len(text) + found * len(new))


# What a filter or string method would make, checked from its arguments before it runs.
def _filter_center(value, width=80, *_):
    _width(width)


def _filter_indent(value, width=4, *_args, **_kwargs):
    pad = len(width) if isinstance(width, str) else _width(width)
    _ensure(len(str(value)) + (str(value).count("\n") + 1) * pad)


def _filter_wordwrap(value, width=79, break_long_words=True, wrapstring=None, *_):
    _ensure(len(str(value)) * (1 + len(wrapstring or "\n")))


def _filter_join(value, d="", attribute=None):
    _check_join(value, d)


def _filter_format(value, *args, **kwargs):
    _check_percent_format(str(value))


def _filter_batch(value, linecount, fill_with=None):
    _width(linecount)


def _filter_slice(value, slices, fill_with=None):
    _width(slices)


def _filter_truncate(value, length=255, killwords=False, end="...", leeway=None):
    _ensure(len(str(end)))


FILTER_CHECKS = {
    "center": _filter_center,
    "indent": _filter_indent,
    "wordwrap": _filter_wordwrap,
    "join": _filter_join,
    "format": _filter_format,
    "batch": _filter_batch,
    "slice": _filter_slice,
    "truncate": _filter_truncate,
    "replace": lambda value, old, new, count=None, *_: _check_replace(value, old, new, count),
}
STRING_METHOD_CHECKS = {
    "center": lambda text, width, *_: _width(width),
    "ljust": lambda text, width, *_: _width(width),
    "rjust": lambda text, width, *_: _width(width),
    "zfill": lambda text, width: _width(width),
    "expandtabs": lambda text, tabsize=8: _ensure(len(text) * _width(tabsize)),
    "replace": _check_replace,
    "join": lambda separator, items: _check_join(items, separator),
}


def _checked_filter(name: str, function):
    check = FILTER_CHECKS.get(name)

    @functools.wraps(function)  # keeps jinja's pass_context/eval_context marks
    def checked(*args, **kwargs):
        _step()
        if check is not None:
            # The value is the first argument after a context, eval context or environment.
            offset = 1 if getattr(function, "jinja_pass_arg", None) else 0
            check(*args[offset:], **kwargs)
        result = function(*args, **kwargs)
        if isinstance(result, str | list | tuple):
            _ensure(len(result))
        return result

    return checked


# The filters meter_template puts in: pass_context, so never folded into constants.
@pass_context
def _metered_loop(context, iterable, text_per_pass=0):
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.step()
            budget.write(text_per_pass)
        yield item


@pass_context
def _metered_output(context, value):
    budget = _budget.get()
    if budget is not None:
        budget.step()
        budget.write(_size(value))
    return value


@pass_context
def _metered_concat(context, values):
    texts = [str(value) for value in values]
    _ensure(sum(len(text) for text in texts))
    return "".join(texts)


METERED_LOOP, METERED_OUTPUT, METERED_CONCAT = "metered_loop", "metered_output", "metered_concat"


def _filter_node(node, name: str, lineno: int, args=()):
    return nodes.Filter(node, name, list(args), [], None, None, lineno=lineno)


class _Meter(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.For:
        # The template's own text in the loop is written on every pass; counting it here
        # keeps it out of the output filter (and so out of an SMS's variables).
        text = sum(
            len(data.data) for child in node.body for data in child.find_all(nodes.TemplateData)
        )
        node = self.generic_visit(node)
        weight = nodes.Const(text, lineno=node.lineno)
        node.iter = _filter_node(node.iter, METERED_LOOP, node.lineno, [weight])
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        node = self.generic_visit(node)
        return _filter_node(nodes.List(node.nodes, lineno=node.lineno), METERED_CONCAT, node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        node = self.generic_visit(node)
        node.nodes = [
            child
            if isinstance(child, nodes.TemplateData)
            else _filter_node(child, METERED_OUTPUT, child.lineno)
            for child in node.nodes
        ]
        return node


def meter_template(tree: nodes.Template) -> nodes.Template:
    """The parsed template with its loops, `~` joins and output going through the budget."""
    return _Meter().visit(tree)


def _int_bits(value) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _check_binop(operator_name: str, left, right) -> None:
    if operator_name == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                _ensure(len(sequence) * max(count, 0))
        if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
            raise RenderLimit(TOO_BIG)
    elif operator_name == "**" and isinstance(left, int) and isinstance(right, int):
        if abs(left) > 1 and right > 0 and _int_bits(left) * right > MAX_INT_BITS:
            raise RenderLimit(TOO_BIG)
    elif operator_name == "%" and isinstance(left, str):
        _check_percent_format(left)
    elif operator_name == "+" and all(
        isinstance(side, str | list | tuple) for side in (left, right)
    ):
        _ensure(len(left) + len(right))


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every step counted and growth checked (see the module)."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//", "/", "-"})
    intercepted_unops = frozenset({"-", "+"})

    def __init__(self, **options):
        super().__init__(**options)
        self.filters = {
            name: _checked_filter(name, function) for name, function in self.filters.items()
        }
        self.filters[METERED_LOOP] = _metered_loop
        self.filters[METERED_OUTPUT] = _metered_output
        self.filters[METERED_CONCAT] = _metered_concat
        self.tests = {name: _counted(function) for name, function in self.tests.items()}

    def call_binop(self, context, operator_name, left, right):
        _step()
        _check_binop(operator_name, left, right)
        return super().call_binop(context, operator_name, left, right)

    def call_unop(self, context, operator_name, arg):
        _step()
        return super().call_unop(context, operator_name, arg)

    def getattr(self, obj, attribute):
        _step()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _step()
        return super().getitem(obj, argument)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
        _step()
        if isinstance(getattr(__obj, "__self__", None), str):
            check = STRING_METHOD_CHECKS.get(getattr(__obj, "__name__", ""))
            if check is not None:
                check(__obj.__self__, *args, **kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list | tuple):
            _ensure(len(result))
        return result

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        _check_brace_format(value.__self__)
        return wrapper


def _counted(function):
    @functools.wraps(function)
    def counted(*args, **kwargs):
        _step()
        return function(*args, **kwargs)

    return counted
