"""Unit tests of the render budget (services.kit.sandbox, DESIGN §10.3): every way of building a
big value or spending many operations fails with RenderBudgetExceeded, the same way each time; a
normal template renders as before; compiling evaluates nothing unbounded; no template changes
the data other recipients see."""

from __future__ import annotations

import copy

import pytest
from jinja2.exceptions import SecurityError

from services.kit.errors import InvalidArgument
from services.kit.limits import MAX_RENDER_OPERATIONS, MAX_TEMPLATE_SOURCE
from services.kit.sandbox import OutputTooLong, RenderBudget, RenderBudgetExceeded, render
from services.kit.templates import USER_TARGET_VARIABLES, Tree, compile_text, user_variables

CONTEXT = {
    "sender": user_variables({"id": "s1", "name": "Sam", "custom": {"team": "blue"}}),
    "receiver": user_variables({"id": "r1", "name": "Ann", "teams": ["a", "b"],
                                "custom": {"tags": [1, 2], "n": 3, "city": "Paris"}}),
}
BIG = 'set x = "x" * 60000'

HOSTILE = {
    "repeated string": '{{ "a" * 10**9 }}',
    "repeated list": "{{ [1, 2] * 10**8 }}",
    "repeated receiver data": "{{ receiver.name * 100000 }}",
    "big power": "{{ 2 ** 10000000 }}",
    "growing product": "{% set n = 10**100000 %}{{ n * n }}",
    "concatenation": f"{{% {BIG} %}}{{{{ x + x }}}}",
    "~ join": f"{{% {BIG} %}}{{{{ x ~ x }}}}",
    "join filter": f"{{% {BIG} %}}{{{{ [x, x, x] | join }}}}",
    "str.join": f'{{% {BIG} %}}{{{{ "".join([x, x]) }}}}',
    "sum of lists": "{% set x = [1] * 60000 %}{{ [x, x] | sum(start=[]) }}",
    "center filter": '{{ "a" | center(10**9) }}',
    "str.center": '{{ "a".center(10**9) }}',
    "str.zfill": '{{ "1".zfill(10**9) }}',
    "indent by a long string": '{{ ("a\n" * 30000) | indent("xxxx") }}',
    "wordwrap with a long wrapstring": '{{ ("a " * 30000) | wordwrap(2, wrapstring="-" * 100) }}',
    "replace": f'{{% {BIG} %}}{{{{ x | replace("x", "yy") }}}}',
    "str.replace": f'{{% {BIG} %}}{{{{ x.replace("x", "yy") }}}}',
    "str.expandtabs": '{{ ("\t" * 1000).expandtabs(1000) }}',
    "str.translate": f'{{% {BIG} %}}{{{{ x.translate({{120: "yy"}}) }}}}',
    "% width": '{{ "%1000000000d" % 1 }}',
    "% width from the arguments": '{{ "%*d" % (10**9, 1) }}',
    "format filter width": '{{ "%1000000000s" | format("x") }}',
    "str.format width": '{{ "{:1000000000}".format(1) }}',
    "str.format nested width": '{{ "{:{}}".format(1, 10**9) }}',
    "batch fill": "{{ [1] | batch(10**9, 'x') | list }}",
    "range": "{{ range(10**8) | list }}",
    "list of a range": "{{ range(99999) | list }}",
    "slice of data copied in a loop": "{% set x = range(60000) | list %}{% for i in range(99999) %}{{ x[1:] | length }}{% endfor %}",
    "nested loops": "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
                    "{% endfor %}{% endfor %}{% endfor %}",
    "filtered-out loop items": "{% for i in range(99999) if i < 0 %}{% endfor %}{% for i in range(99999) if i < 0 %}"
                               "{% endfor %}",
    "calls in a loop": "{% for i in range(60000) %}{% set y = receiver.name.upper() %}{% endfor %}",
    "membership scans": "{% set x = range(20000) | list %}{% for i in range(99999) %}{{ 'z' in x }}{% endfor %}",
    "sorting in a loop": "{% set x = range(4000) | list %}{% for i in range(1000) %}{% set y = x | sort %}{% endfor %}",
    "recursive macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "set block": "{% set x %}{% for i in range(9999) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}{{ x | length }}",
    "macro output": "{% macro m() %}{% for i in range(99) %}{{ 'y' * 1000 }}{% endfor %}{% endmacro %}{{ m() | length }}",
    "shared big list printed": '{% set x = ["x"] * 60000 %}{% set y = [x, x, x, x, x, x, x, x] %}{{ y }}',
    "shared big list compared": '{% set x = ["x"] * 60000 %}{{ [x, x] == [x, x] }}',
    "shared big list ~": '{% set x = ["x"] * 60000 %}{{ "" ~ [x, x, x] }}',
    "shared big lists in a dict view": '{% set x = ["x"] * 60000 %}{% set d = {"a": x, "b": x} %}'
                                       '{% set e = {"a": d, "b": d, "c": d} %}{{ {"k": e}.values() }}',
    "shared big lists in a namespace": '{% set x = ["x"] * 60000 %}{% set ns = namespace() %}{% set ns.a = [x, x] %}'
                                       "{{ ns }}",
    "a method of shared big lists": '{% set x = ["x"] * 60000 %}{% set y = [x, x] %}{{ y.count(1) }}',
    "tojson indent": "{{ [[1]] | tojson(indent=100000) }}",
    "output": "{% for i in range(99999) %}{{ receiver.name }}{% endfor %}",
}


def rendered(source: str, max_chars: int = 65536) -> tuple[str, RenderBudget]:
    budget = RenderBudget()
    return render(compile_text(source, "text", USER_TARGET_VARIABLES), CONTEXT, budget, max_chars), budget


def failure(source: str) -> tuple[str, str, int]:
    budget = RenderBudget()
    with pytest.raises(RenderBudgetExceeded) as caught:
        render(compile_text(source, "text", USER_TARGET_VARIABLES), CONTEXT, budget, 65536)
    return type(caught.value).__name__, str(caught.value), budget.operations


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_each_way_of_building_big_or_spending_long_fails_the_same_way_twice(source):
    first = failure(source)
    assert failure(source) == first
    assert first[2] <= MAX_RENDER_OPERATIONS + 2 * 65536  # it stopped at the limit, not after


def test_a_normal_template_renders_and_costs_little():
    text, budget = rendered("Hi {{ receiver.name | title }}{% if receiver.custom.city == 'Paris' %} in Paris{% endif %},"
                            " {{ sender.name }} ({{ receiver.teams | join(', ') }}) {{ '%.1f' % receiver.custom.n }}")
    assert text == "Hi Ann in Paris, Sam (a, b) 3.0"
    assert budget.operations < 20


def test_a_loop_within_the_budget_renders():
    text, budget = rendered("{% for i in range(1000) %}{{ receiver.name }}{% endfor %}", max_chars=5000)
    assert text == "Ann" * 1000 and 1000 <= budget.operations < MAX_RENDER_OPERATIONS


def test_output_past_the_callers_limit_is_output_too_long():
    with pytest.raises(OutputTooLong):
        rendered("{% for i in range(2000) %}{{ receiver.name }}{% endfor %}", max_chars=5000)


def test_one_budget_spans_the_renders_it_is_given_to():
    template = compile_text("{% for i in range(60000) %}{% endfor %}", "text", USER_TARGET_VARIABLES)
    budget = RenderBudget()
    render(template, CONTEXT, budget, 10)
    with pytest.raises(RenderBudgetExceeded):
        render(template, CONTEXT, budget, 10)


@pytest.mark.parametrize("source", ['{{ "a" * 10**9 }}', "{{ range(10**8) | list }}", '{{ "a" | center(10**9) }}',
                                    "{{ 2 ** (10**9) }}", '{{ "{:1000000000}".format(1) }}', '{{ "a" ~ "b" * 10**9 }}'])
def test_compiling_folds_nothing_unbounded(source):
    # Were any of these folded into a constant, compiling would take minutes and gigabytes.
    template = compile_text(source, "text", USER_TARGET_VARIABLES)
    with pytest.raises(RenderBudgetExceeded):
        render(template, CONTEXT, RenderBudget(), 65536)


@pytest.mark.parametrize("source", [
    "{{ receiver.custom.tags.append(5) }}", "{{ receiver.custom.update({'n': 0}) }}",
    "{{ dict.update(receiver.custom, {'n': 0}) }}", "{{ dict.setdefault(sender, 'x', 1) }}",
    "{{ receiver.teams.pop() }}", "{{ receiver.custom.tags.clear() }}", "{{ receiver.custom.tags.sort(reverse=true) }}",
])
def test_no_template_changes_what_other_recipients_see(source):
    before = copy.deepcopy(CONTEXT)
    with pytest.raises(SecurityError):
        rendered(source)
    assert CONTEXT == before


def test_set_and_namespaces_stay_in_their_render():
    source = "{% set ns = namespace(n=0) %}{% set ns.n = ns.n + 1 %}{% set receiver = 'x' %}{{ ns.n }}{{ receiver }}"
    assert rendered(source)[0] == rendered(source)[0] == "1x"
    assert CONTEXT["receiver"]["name"] == "Ann"


def test_a_source_over_the_limit_is_refused_before_compiling_naming_the_field():
    with pytest.raises(InvalidArgument) as caught:
        Tree({"x": "{{ sender.name }}" + " " * MAX_TEMPLATE_SOURCE}, "message_template.custom", USER_TARGET_VARIABLES)
    assert caught.value.violations[0].field == "message_template.custom.x"
    Tree({"x": "{{ sender.name }}".ljust(MAX_TEMPLATE_SOURCE)}, "message_template.custom", USER_TARGET_VARIABLES)


def test_a_plain_string_over_the_limit_is_refused_too():
    with pytest.raises(InvalidArgument) as caught:
        Tree({"x": "no markup " * (MAX_TEMPLATE_SOURCE // 10 + 1)}, "message_template.custom", USER_TARGET_VARIABLES)
    assert caught.value.violations[0].field == "message_template.custom.x"


def test_recursive_loops_are_refused():
    with pytest.raises(InvalidArgument):
        compile_text("{% for x in [1] recursive %}{{ loop([]) }}{% endfor %}", "text", USER_TARGET_VARIABLES)


@pytest.mark.parametrize("source", ["{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}", "{{ 1" + " + 1" * 4000 + " }}",
                                    "{{ sender" + ".a" * 6000 + " }}", "{% for i in [1] %}" * 25 + "{% endfor %}" * 25,
                                    "{% if 1 %}" * 120 + "{% endif %}" * 120])
def test_a_template_nested_deeper_than_python_allows_is_invalid_not_internal(source):
    with pytest.raises(InvalidArgument) as caught:
        compile_text(source, "text", USER_TARGET_VARIABLES)
    assert caught.value.violations[0].description == "the template nests too deeply"


def test_templates_render_only_under_a_budget():
    template = compile_text("{{ receiver.name | upper }}", "text", USER_TARGET_VARIABLES)
    with pytest.raises(RenderBudgetExceeded):
        template.render(CONTEXT)  # Jinja's own render has no budget: nothing budgeted runs
