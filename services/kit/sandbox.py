"""The Jinja environment campaign templates run in: Jinja's immutable sandbox (no template can
change a list or dict another recipient sees) under a deterministic budget per render (DESIGN
§10.3). Operations are counted, never timed, so a replay after a crash fails exactly the
recipients a clean run fails.

What counts, and where it is counted:
- one operation per loop and per loop iteration (each `for` iterates through `iterate`), per call
  (functions, methods, macros: `call`), per filter or test, per intercepted operator
  (`+ * ** %`: `call_binop`);
- a value an operation takes or builds costs one more operation per RENDER_CHARS_PER_OPERATION
  characters (RENDER_ITEMS_PER_OPERATION items of a container it weighs), so that 100,000
  iterations cannot each sort or scan a 64 KiB list;
- no string, list or number (in bytes) over MAX_RENDER_VALUE is built: the operations that multiply
  (`*`, `**`, padding and `replace`, `join`, `%` and `format` widths, `batch`, …) are checked
  before they run, every other result after; stringifying a value (output, `~`, filters) first
  weighs it, nested containers included, so a list that holds the same big list many times
  cannot be turned into gigabytes of text;
- a template's outputs (and `{% set %}` blocks, macro bodies) are joined only when they fit.

Compiling cannot blow up either: intercepted operators are never folded into constants, and the
budgeted filters refuse to run outside a render (Jinja then leaves them to the render).
"""

from __future__ import annotations

import collections
import contextvars
import itertools
import re
import string
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, operators, optimizeconst
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment, modifies_known_mutable
from jinja2.utils import Namespace

from services.kit.limits import MAX_RENDER_OPERATIONS, MAX_RENDER_VALUE

# A value this many characters (or items) long costs one more operation when it is handled; a
# container costs more, as weighing it walks its items in Python.
RENDER_CHARS_PER_OPERATION = 16
RENDER_ITEMS_PER_OPERATION = 2
# Calls nested deeper than this fail (macros calling themselves); deterministic, unlike the stack.
MAX_CALL_DEPTH = 50
# Random output differs on every replay; urlize and pprint build markup or layout a campaign
# message has no use for, with parameters that multiply their output.
_REMOVED_FILTERS = ("random", "urlize", "pprint")
_REMOVED_GLOBALS = ("lipsum",)
# What str() writes out item by item (dict views too: `d.items()`).
_CONTAINERS: tuple[type[Collection[Any]], ...] = (list, tuple, dict, set, frozenset, type({}.keys()), type({}.values()),
                                                  type({}.items()))
_SIZED = (str, list, tuple, dict, set, frozenset, bytes)
_MUTABLE_SAMPLES: tuple[Any, ...] = ({}, [], set(), collections.deque())


class RenderBudgetExceeded(Exception):
    """A render went past its budget; the recipient fails (render_error), the same on every replay."""


class OutputTooLong(RenderBudgetExceeded):
    """A render's output went past the limit its caller gave (the text: text_too_long)."""


class RenderBudget:
    """What one recipient's render has used so far."""

    __slots__ = ("operations", "depth")

    def __init__(self) -> None:
        self.operations = 0
        self.depth = 0

    def charge(self, operations: int) -> None:
        self.operations += operations
        if self.operations > MAX_RENDER_OPERATIONS:
            raise RenderBudgetExceeded(f"the template needs more than {MAX_RENDER_OPERATIONS} operations")


_active: contextvars.ContextVar[RenderBudget] = contextvars.ContextVar("render_budget")


def active_budget() -> RenderBudget:
    """The budget of the render running here; outside one (Jinja folding constants at compile
    time) nothing budgeted may run."""
    try:
        return _active.get()
    except LookupError:
        raise RenderBudgetExceeded("budgeted operations run only while rendering") from None


def render(template: jinja2.Template, context: Mapping[str, Any], budget: RenderBudget, max_chars: int) -> str:
    """Renders under `budget`; raises OutputTooLong once the output passes `max_chars`, and
    RenderBudgetExceeded (or whatever the template raised) otherwise."""
    token = _active.set(budget)
    try:
        parts = []
        size = 0
        for part in template.root_render_func(template.new_context(dict(context))):
            size += len(part)
            if size > max_chars:
                raise OutputTooLong(f"the output is longer than {max_chars} characters")
            parts.append(part)
        return "".join(parts)
    finally:
        _active.reset(token)


# --- sizes ----------------------------------------------------------------------------------------

def weigh(value: Any, budget: RenderBudget) -> None:
    """Charges for handling `value`: its characters and items, nested ones included (shared ones
    each time they appear, as str() would write them); over MAX_RENDER_VALUE it is refused."""
    if value.__class__ is str:
        size, per_operation = len(value), RENDER_CHARS_PER_OPERATION
    elif isinstance(value, (*_CONTAINERS, Namespace)):
        size, per_operation = _weight(value), RENDER_ITEMS_PER_OPERATION
    else:
        return
    if size > MAX_RENDER_VALUE:
        raise RenderBudgetExceeded(f"a value over {MAX_RENDER_VALUE} characters or items")
    budget.charge(size // per_operation)


def _weight(value: Any) -> int:
    """Characters and items in `value` (a number is one item of its container), counted until they
    pass MAX_RENDER_VALUE: then it stops (what it pushes stays within what it counted)."""
    total = 0
    stack = [value]
    while stack and total <= MAX_RENDER_VALUE:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(itertools.islice(itertools.chain.from_iterable(item.items()), MAX_RENDER_VALUE))
        elif isinstance(item, _CONTAINERS):
            total += len(item)
            stack.extend(itertools.islice(item, MAX_RENDER_VALUE))
        elif isinstance(item, Namespace):  # its repr lists its attributes
            total += 1
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
    return total


def built(value: Any, budget: RenderBudget) -> Any:
    """A value an operation built: refused over MAX_RENDER_VALUE, else charged for its size."""
    if isinstance(value, _SIZED):
        size = len(value)
    elif value.__class__ is int:
        size = value.bit_length() // 8
    else:
        return value
    if size > MAX_RENDER_VALUE:
        raise RenderBudgetExceeded(f"a value over {MAX_RENDER_VALUE} characters, items or bytes")
    budget.charge(size // RENDER_CHARS_PER_OPERATION)
    return value


def _refuse_over(size: int, what: str) -> None:
    """Checks a size known before the operation that would build it."""
    if size > MAX_RENDER_VALUE:
        raise RenderBudgetExceeded(f"{what} would build a value over {MAX_RENDER_VALUE} characters or items")


def _text(value: Any, budget: RenderBudget) -> str:
    """str(value), weighed first (a list holding the same big list many times is small in memory
    and huge as text)."""
    if value.__class__ is str:
        return value
    weigh(value, budget)
    return built(str(value), budget)


# --- operators ------------------------------------------------------------------------------------

# A % field whose width or precision is taken from the arguments, or could pass MAX_RENDER_VALUE
# (five digits or more): the only ones worth a look, so an ordinary format is scanned in C.
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:(\*|\d{5,})|\d*\.(\*|\d{5,}))")
_NUMBER = re.compile(r"\d+")


def _check_percent_format(fmt: str) -> None:
    """`fmt % args` (and the `format` filter): widths and precisions are written in the format, never
    taken from the arguments (`%*d`), and within MAX_RENDER_VALUE."""
    for match in _PERCENT_FIELD.finditer(fmt):
        for size in match.groups():
            if size == "*":
                raise RenderBudgetExceeded("a '*' width or precision in a % format")
            if size is not None:
                _refuse_over(int(size), "a % format width")


def _check_brace_format(fmt: str) -> None:
    """`fmt.format(...)`: no width or precision from the arguments, none over MAX_RENDER_VALUE."""
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None or not spec:
            continue
        if "{" in spec:
            raise RenderBudgetExceeded("a width or precision taken from the arguments of format()")
        for size in _NUMBER.findall(spec):
            _refuse_over(int(size), "a format() width")


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                _refuse_over(len(seq) * times, "a repetition")
        _refuse_over((_int_bits(left) + _int_bits(right)) // 8, "a product")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            _refuse_over(left.bit_length() * right // 8, "a power")
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            _refuse_over(len(left) + len(right), "a concatenation")
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left)


# --- calls ----------------------------------------------------------------------------------------

def _check_str_method(name: str, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The str methods whose output can outgrow their inputs, checked before they run; returns the
    arguments to call with (`join` gets its items as a list, counted once)."""
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        _refuse_over(args[0], f"str.{name}")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            _refuse_over(len(text) + text.count("\t") * tabsize, "str.expandtabs")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _check_replace(text, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "join" and args:
        items = _items(args[0])
        _refuse_over(sum(len(i) if isinstance(i, str) else 0 for i in items) + len(text) * len(items), "str.join")
        return (items, *args[1:])
    elif name in ("format", "format_map"):
        _check_brace_format(text)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        _refuse_over(len(text) * longest, "str.translate")
    return args


def _check_replace(text: str, old: str, new: str, count: Any) -> None:
    occurrences = text.count(old)
    if isinstance(count, int) and 0 <= count < occurrences:
        occurrences = count
    _refuse_over(len(text) + occurrences * max(len(new) - len(old), 0), "a replace")


def _items(iterable: Any) -> list[Any]:
    """An iterable's items, each charged (a generator's items were not counted anywhere else)."""
    budget = active_budget()
    items = []
    for item in iterable:
        items.append(item)
        if len(items) > MAX_RENDER_VALUE:
            raise RenderBudgetExceeded(f"more than {MAX_RENDER_VALUE} items")
    budget.charge(len(items) // RENDER_CHARS_PER_OPERATION)
    return items


def _bounded_range(*args: int) -> range:
    """range(), at most MAX_RANGE long as in Jinja's sandbox, but a budget failure past it (so a
    template that asks for more is refused at create)."""
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise RenderBudgetExceeded(f"a range over {MAX_RANGE} numbers")
    return values


def _method_of(obj: Any) -> tuple[str, Any] | None:
    """(name, owner) of a bound method (`"x".center`, `items.count`), sandboxed `format` included."""
    wrapped = getattr(obj, "__wrapped__", obj)
    owner = getattr(wrapped, "__self__", None)
    if owner is None:
        return None
    return getattr(wrapped, "__name__", ""), owner


# --- filters and tests ----------------------------------------------------------------------------

FilterCheck = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, keyword: str, default: Any) -> Any:
    """A filter's argument after its value, given by position or by keyword."""
    return args[position] if len(args) > position else kwargs.get(keyword, default)


def _size_argument(keyword: str) -> FilterCheck:
    """A filter whose first argument is the size of what it builds (center's width, batch's lines)."""
    def check(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        size = _arg(args, kwargs, 0, keyword, 0)
        if isinstance(size, int):
            _refuse_over(size, f"a filter's {keyword}")
        return value
    return check


def _check_indent(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    text = str(value)
    width = _arg(args, kwargs, 0, "width", 4)
    per_line = width if isinstance(width, int) else len(str(width))
    _refuse_over(len(text) + (text.count("\n") + 1) * per_line, "the indent filter")
    return value


def _check_wordwrap(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    text = str(value)
    width = _arg(args, kwargs, 0, "width", 79)
    wrapstring = _arg(args, kwargs, 2, "wrapstring", None) or "\n"
    lines = len(text) // max(width if isinstance(width, int) else 1, 1) + text.count("\n") + 1
    _refuse_over(len(text) + lines * len(str(wrapstring)), "the wordwrap filter")
    return value


def _check_replace_filter(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) >= 2:
        _check_replace(str(value), str(args[0]), str(args[1]), _arg(args, kwargs, 2, "count", -1))
    return value


def _check_format_filter(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _check_percent_format(str(value))
    return value


def _check_tojson(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if _arg(args, kwargs, 0, "indent", None):  # each level of nesting would repeat it
        raise RenderBudgetExceeded("tojson with an indent is not available in campaign templates")
    return value


def _joined_items(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """join and sum: the items are counted, and what they add up to checked, before they run."""
    if isinstance(value, str):
        return value
    items = _items(value)
    separator = str(_arg(args, kwargs, 0, "d", "")) if args or "d" in kwargs else ""
    _refuse_over(sum(len(i) if isinstance(i, _SIZED) else 1 for i in items) + len(separator) * len(items),
                 "joining items")
    return items


# The filters whose output can outgrow their input, checked before they run (the value they are
# called with comes back, or a list of a consumed iterable's items, counted).
_FILTER_CHECKS: dict[str, FilterCheck] = {
    "center": _size_argument("width"), "batch": _size_argument("linecount"), "slice": _size_argument("slices"),
    "indent": _check_indent, "wordwrap": _check_wordwrap, "replace": _check_replace_filter,
    "format": _check_format_filter, "tojson": _check_tojson, "join": _joined_items, "sum": _joined_items,
}


def _budgeted(function: Callable[..., Any], check: FilterCheck | None = None) -> Callable[..., Any]:
    """A filter or test that charges for its call and what it is given, and refuses what would
    outgrow the budget; Jinja passes it the context or environment as it did the original."""
    pass_arg = jinja2.utils._PassArg.from_obj(function)
    first = 0 if pass_arg is None else 1  # where the value is among the arguments

    def run(*args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        budget.charge(1)
        for arg in args[first:]:
            weigh(arg, budget)
        for arg in kwargs.values():
            weigh(arg, budget)
        if check is not None:
            args = (*args[:first], check(args[first], args[first + 1:], kwargs), *args[first + 1:])
        return built(function(*args, **kwargs), budget)

    if pass_arg is not None:
        run.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return run


# --- the generated code ---------------------------------------------------------------------------

def count_loops(template: nodes.Template) -> None:
    """Makes every loop iterate through `iterate`, which charges each item (filtered-out ones too)."""
    for loop in template.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.EnvironmentAttribute("iterate"), [loop.iter], [], None, None,
                               lineno=loop.iter.lineno)


class _BudgetedCodeGenerator(CodeGenerator):
    """Jinja's code generator, routing what it would otherwise do unseen through the budget:
    `~` joins and the operands of comparisons (`in` and `==` scan what they get)."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("(environment.compared(")
        self.visit(node.expr, frame)
        self.write(")")
        for op in node.ops:
            self.visit(op, frame)
        self.write(")")

    def visit_Operand(self, node: nodes.Operand, frame: Frame) -> None:
        self.write(f" {operators[node.op]} environment.compared(")
        self.visit(node.expr, frame)
        self.write(")")


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, every operation that can cost much or build much under the budget."""

    code_generator_class = _BudgetedCodeGenerator
    # Intercepted, so also never folded into constants at compile time.
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._finalize, **options)
        for name in _REMOVED_FILTERS:
            del self.filters[name]
        for name in _REMOVED_GLOBALS:
            del self.globals[name]
        self.globals["range"] = _bounded_range
        self.filters = {name: _budgeted(f, _FILTER_CHECKS.get(name)) for name, f in self.filters.items()}
        self.tests = {name: _budgeted(cast(Callable[..., Any], t)) for name, t in self.tests.items()}

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """Joins a `{% set %}` block's or a macro's output, once it is known to fit."""
        parts = list(parts)
        size = sum(map(len, parts))
        _refuse_over(size, "a block's output")
        active_budget().charge(size // RENDER_CHARS_PER_OPERATION)
        return "".join(parts)

    @staticmethod
    def _finalize(value: Any) -> Any:
        """An output expression's value, stringified within the budget."""
        return value if value.__class__ is str else _text(value, active_budget())

    @staticmethod
    def iterate(iterable: Iterable[Any]) -> Iterator[Any]:
        budget = active_budget()
        for item in iterable:
            budget.charge(1)
            yield item

    @staticmethod
    def join_text(values: tuple[Any, ...]) -> str:
        """`a ~ b ~ c`."""
        budget = active_budget()
        texts = [_text(v, budget) for v in values]
        _refuse_over(sum(map(len, texts)), "a ~ join")
        return built("".join(texts), budget)

    @staticmethod
    def compared(value: Any) -> Any:
        weigh(value, active_budget())
        return value

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Also refuses a mutating method taken from the type (`dict.update(receiver.custom, …)`
        through the `dict` global), which Jinja's immutable sandbox lets through."""
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not (isinstance(obj, type) and any(
            issubclass(obj, type(sample)) and modifies_known_mutable(sample, attr) for sample in _MUTABLE_SAMPLES))

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = active_budget()
        budget.charge(1)
        weigh(left, budget)
        weigh(right, budget)
        _check_binop(operator, left, right)
        return built(self.binop_table[operator](left, right), budget)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any,  # noqa: N805 — Jinja's own signature
             *args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        budget.charge(1)
        for arg in itertools.chain(args, kwargs.values()):
            weigh(arg, budget)
        method = _method_of(__obj)
        if method is not None:
            name, owner = method
            weigh(owner, budget)  # a method scans or copies what it is called on
            if isinstance(owner, str):
                args = _check_str_method(name, owner, args, kwargs)
        if budget.depth >= MAX_CALL_DEPTH:
            raise RenderBudgetExceeded(f"calls nested more than {MAX_CALL_DEPTH} deep")
        budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return built(result, budget)

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        if argument.__class__ is slice:  # a slice is a copy
            return built(value, active_budget())
        return value
