"""Campaign templates: Jinja2 in its budgeted immutable sandbox (services.kit.sandbox), compiled
once, checked at create/update.

The same rules hold wherever a template is compiled (campaign_svc validates, delivery_svc
renders), so they live here:
- only the variables a campaign offers may appear (`sender`, `channel`, and `receiver` for user
  targets); an unknown variable, a syntax error, a source over MAX_TEMPLATE_SOURCE characters or
  a recursive loop is an `InvalidArgument` naming the field;
- a missing attribute of a known variable renders empty (`{{ receiver.custom.nickname }}`);
- string values inside `custom` and `attachments` are templates too (`Tree`);
- every render runs under a RenderBudget (one per recipient) and an output limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import meta, nodes

from services.kit import reasons
from services.kit.errors import InvalidArgument
from services.kit.limits import MAX_RENDER_VALUE, MAX_RENDERED_CUSTOM, MAX_TEMPLATE_SOURCE
from services.kit.sandbox import BudgetedEnvironment, RenderBudget, count_loops, render

USER_TARGET_VARIABLES = frozenset({"sender", "receiver", "channel"})

_env: BudgetedEnvironment | None = None


def environment() -> BudgetedEnvironment:
    """The process's sandboxed environment, built on first use (not at import)."""
    global _env
    if _env is None:
        _env = BudgetedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False,
                                   keep_trailing_newline=True)
    return _env


def is_template(source: str) -> bool:
    """Whether a string holds Jinja markup (else it is used as it is)."""
    return "{{" in source or "{%" in source or "{#" in source


def compile_text(source: str, field: str, variables: frozenset[str]) -> jinja2.Template | str:
    """Compiles one template; plain strings come back as they are (nothing to render)."""
    return compile_using(source, field, variables)[0]


def compile_using(source: str, field: str, variables: frozenset[str]) -> tuple[jinja2.Template | str, frozenset[str]]:
    """compile_text, and the variables the template uses (from the same parse)."""
    if len(source) > MAX_TEMPLATE_SOURCE:  # with markup or without: every templated string
        raise InvalidArgument(field, f"a template must be at most {MAX_TEMPLATE_SOURCE} characters "
                                     f"(got {len(source)})", reason=reasons.TEMPLATE_INVALID)
    if not is_template(source):
        return source, frozenset()
    env = environment()
    try:
        parsed = env.parse(source)
        used = frozenset(meta.find_undeclared_variables(parsed))
        if any(loop.recursive for loop in parsed.find_all(nodes.For)):
            raise InvalidArgument(field, "recursive loops are not available in campaign templates",
                                  reason=reasons.TEMPLATE_INVALID)
        count_loops(parsed)
        template = env.from_string(parsed)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidArgument(field, f"template syntax error on line {exc.lineno}: {exc.message}",
                              reason=reasons.TEMPLATE_INVALID) from None
    except jinja2.TemplateError as exc:
        raise InvalidArgument(field, f"template error: {exc}", reason=reasons.TEMPLATE_INVALID) from None
    except (RecursionError, SyntaxError):  # Jinja's parser, or Python's limits on the code it generates
        raise InvalidArgument(field, "the template nests too deeply", reason=reasons.TEMPLATE_INVALID) from None
    unknown = used - variables
    if unknown:
        allowed = ", ".join(sorted(variables))
        raise InvalidArgument(field, f"unknown template variable(s) {', '.join(sorted(unknown))}; "
                                     f"available: {allowed}", reason=reasons.TEMPLATE_INVALID)
    return template, used


class Tree:
    """A compiled JSON-like value whose strings may be templates; `render` rebuilds it.
    `uses` holds the variables its templates use, `templates` each template with its field."""

    def __init__(self, value: Any, field: str, variables: frozenset[str]) -> None:
        self.uses: set[str] = set()
        self.templates: list[tuple[str, jinja2.Template]] = []
        self._compiled = self._compile(value, field, variables)

    def _compile(self, value: Any, field: str, variables: frozenset[str]) -> Any:
        if isinstance(value, str):
            compiled, used = compile_using(value, field, variables)
            self.uses |= used
            if isinstance(compiled, jinja2.Template):
                self.templates.append((field, compiled))
            return compiled
        if isinstance(value, Mapping):
            return {k: self._compile(v, f"{field}.{k}", variables) for k, v in value.items()}
        if isinstance(value, list):
            return [self._compile(v, f"{field}[{i}]", variables) for i, v in enumerate(value)]
        return value

    def render(self, context: Mapping[str, Any], budget: RenderBudget) -> Any:
        """The value with its templates rendered, together at most MAX_RENDERED_CUSTOM characters."""
        room = MAX_RENDERED_CUSTOM

        def rebuild(value: Any) -> Any:
            nonlocal room
            if isinstance(value, jinja2.Template):
                text = render(value, context, budget, room)
                room -= len(text)
                return text
            if isinstance(value, dict):
                return {k: rebuild(v) for k, v in value.items()}
            if isinstance(value, list):
                return [rebuild(v) for v in value]
            return value

        return rebuild(self._compiled)


def render_text(compiled: jinja2.Template | str, context: Mapping[str, Any], budget: RenderBudget,
                max_chars: int = MAX_RENDER_VALUE) -> str:
    """A compiled string rendered under `budget` (OutputTooLong past `max_chars`)."""
    return render(compiled, context, budget, max_chars) if isinstance(compiled, jinja2.Template) else compiled


def uses_variable(source: Any, name: str) -> bool:
    """Whether any template string inside `source` refers to `name` (e.g. `receiver`)."""
    if isinstance(source, str):
        if not is_template(source):
            return False
        try:
            return name in meta.find_undeclared_variables(environment().parse(source))
        except jinja2.TemplateError:
            return False
    if isinstance(source, Mapping):
        return any(uses_variable(v, name) for v in source.values())
    if isinstance(source, list):
        return any(uses_variable(v, name) for v in source)
    return False


def user_variables(user: Mapping[str, Any]) -> dict[str, Any]:
    """A user as templates see it: its fields, `custom`, and custom keys at the top level too
    (as the reference exposes custom data), built-in fields winning a clash."""
    custom = dict(user.get("custom") or {})
    return {**custom, **user, "custom": custom}
