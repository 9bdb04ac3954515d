"""Read a flow class into plain facts: which methods are steps, and what each one's source says.

This module owns the reading of Python source: it finds the `@step` methods of a class and parses
the AST of each one to learn its `self.next(...)` transition, its argument count, its docstring
and its line numbers (always absolute lines in the file, never lines relative to the function).

It never judges a flow. A malformed `self.next` is recorded as a `ParseIssue` on the step, so that
the graph can still be built and `lint` can explain the problem with the step's name and line.
It never imports ray, and never runs user code beyond what importing the class already did.
"""

from __future__ import annotations

import ast
import enum
import inspect
import textwrap
from dataclasses import dataclass

from rayflow.exceptions import InvalidFlowError

# Keywords of Metaflow's `self.next` that rayflow does not run. They are parsed, so the lint can
# name them, rather than silently dropped.
UNSUPPORTED_NEXT_KEYWORDS: tuple[str, ...] = ()
# The foreach variable of `self.next(self.x, num_parallel=N)` (rayflow.parallel.PARALLEL_VAR).
PARALLEL_VAR = "_parallel_ubf_iter"


class IssueKind(enum.Enum):
    """What is wrong with a step's source, as far as reading it can tell."""

    NEXT_NOT_LAST = "self.next() is not the last statement, or is called more than once"
    NEXT_BAD_ARGUMENT = "a self.next() argument is not a step attribute such as self.a"
    FOREACH_NOT_LITERAL = "foreach= is not a string literal naming an artifact"
    NEXT_UNSUPPORTED_KEYWORD = "self.next() has a keyword rayflow does not support"
    SWITCH_MALFORMED = ("a switch is not self.next({literal: self.step, ...}, "
                        "condition='artifact')")


@dataclass(frozen=True)
class ParseIssue:
    kind: IssueKind
    line: int      # absolute line in the step's source file
    detail: str    # the offending source text, or the keyword name


@dataclass(frozen=True)
class StepSource:
    """Everything the source of one step method says, before the graph connects the steps."""

    name: str
    source_file: str
    func_lineno: int
    next_lineno: int | None
    out_funcs: tuple[str, ...]
    foreach_param: str | None
    num_args: int
    doc: str
    decorators: tuple[str, ...]
    issues: tuple[ParseIssue, ...]
    # A switch, `self.next({"a": self.x, "b": self.y}, condition="var")`: its cases in source
    # order (value -> step name) and the artifact whose value picks one.
    switch_cases: tuple[tuple[object, str], ...] = ()
    condition: str | None = None
    # `@step(start=True)` / `@step(end=True)`: the step is marked as the flow's start / end.
    start_mark: bool = False
    end_mark: bool = False
    # `self.next(self.x, num_parallel=N)`: a gang of N tasks of x (N when a literal, else 0).
    parallel_foreach: bool = False
    num_parallel: int = 0


@dataclass(frozen=True)
class ClassSource:
    """A flow class: its steps in source order, and the names a step must not shadow."""

    name: str
    file: str
    lineno: int
    doc: str
    steps: tuple[StepSource, ...]
    non_step_methods: frozenset[str]
    inherited_names: frozenset[str]


def read_class(cls: type) -> ClassSource:
    """Read `cls` (any class whose step methods carry `is_step`) into a `ClassSource`."""
    step_funcs = [func for _, func in _step_functions(cls)]
    steps = sorted((read_step(func) for func in step_funcs),
                   key=lambda s: (s.source_file, s.func_lineno))
    step_names = {s.name for s in steps}
    return ClassSource(
        name=cls.__name__,
        file=inspect.getsourcefile(cls) or "<unknown>",
        lineno=_class_lineno(cls),
        # The class's own docstring only (`__doc__` is not inherited; inspect.getdoc would
        # show FlowSpec's for a flow without one): Metaflow's graph.doc.
        doc=inspect.cleandoc(cls.__doc__) if cls.__doc__ else "",
        steps=tuple(steps),
        non_step_methods=frozenset(_plain_methods(cls) - step_names),
        inherited_names=frozenset(_inherited_names(cls) - step_names),
    )


def is_step(obj: object) -> bool:
    # `is True`, not truthiness: a Mock or a permissive proxy must not pass for a step.
    return callable(obj) and getattr(obj, "is_step", False) is True


def _step_functions(cls: type) -> list[tuple[str, object]]:
    # getattr_static: reading a property of the class must not run user code.
    found = []
    for attr in dir(cls):
        obj = inspect.getattr_static(cls, attr)
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if is_step(obj):
            found.append((attr, obj))
    return found


def _plain_methods(cls: type) -> set[str]:
    # Names a user might mean as a step but forgot to decorate: so the lint can say "add @step".
    names = set()
    for klass in cls.__mro__[:-1]:  # not `object`: its methods are never meant as steps
        for attr, obj in vars(klass).items():
            if callable(obj) and not is_step(obj) and not attr.startswith("__"):
                names.add(attr)
    return names


def _inherited_names(cls: type) -> set[str]:
    # A step with the name of a base-class attribute (FlowSpec.next, .input, ...) would shadow it.
    names = set()
    for klass in cls.__mro__[1:-1]:
        names.update(attr for attr, obj in vars(klass).items() if not is_step(obj))
    return names


def _class_lineno(cls: type) -> int:
    try:
        return inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return 0


def read_step(func) -> StepSource:
    """Parse one step function. Line numbers are absolute lines in its source file."""
    try:
        lines, first_line = inspect.getsourcelines(func)
    except (OSError, TypeError) as err:
        raise InvalidFlowError(
            f"Cannot read the source of step *{func.__name__}*: {err}. rayflow reads each "
            "step's self.next() from its source, so define the flow in a .py file (not in a "
            "notebook cell passed to exec or in the interactive prompt).",
            step=func.__name__) from err
    tree = ast.parse(textwrap.dedent("".join(lines)))
    fdef = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    offset = first_line - 1
    transition = _read_transition(fdef, offset)
    return StepSource(
        name=func.__name__,
        source_file=inspect.getsourcefile(func) or "<unknown>",
        func_lineno=fdef.lineno + offset,
        next_lineno=transition.lineno,
        out_funcs=transition.targets,
        foreach_param=transition.foreach,
        num_args=len(fdef.args.posonlyargs) + len(fdef.args.args),
        doc=ast.get_docstring(fdef) or "",
        decorators=_decorator_names(func),
        issues=transition.issues,
        switch_cases=transition.switch_cases,
        condition=transition.condition,
        start_mark=getattr(func, "is_start_step", False) is True,
        end_mark=getattr(func, "is_end_step", False) is True,
        parallel_foreach=transition.num_parallel is not None,
        num_parallel=transition.num_parallel or 0,
    )


def _decorator_name(deco: object) -> str:
    user = getattr(type(deco), "decorator_name", None)  # a user step decorator / mutator
    if user:
        return user.rpartition(".")[2]
    return getattr(deco, "name", None) or type(deco).__name__


def _decorator_names(func) -> tuple[str, ...]:
    """Its decorators' names, then its user step decorators' and StepMutators' (once each)."""
    decos, seen = [], set()
    for field in ("decorators", "wrappers", "config_decorators"):
        for deco in getattr(func, field, None) or ():
            if id(deco) not in seen:
                seen.add(id(deco))
                decos.append(_decorator_name(deco))
    return tuple(decos)


@dataclass(frozen=True)
class _Transition:
    lineno: int | None
    targets: tuple[str, ...]
    foreach: str | None
    issues: tuple[ParseIssue, ...]
    switch_cases: tuple[tuple[object, str], ...] = ()
    condition: str | None = None
    num_parallel: int | None = None  # num_parallel=: its literal value, 0 for an expression


def _is_next_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "next"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self")


def _read_transition(fdef: ast.FunctionDef, offset: int) -> _Transition:
    last = fdef.body[-1]
    final_call = last.value if isinstance(last, ast.Expr) and _is_next_call(last.value) else None
    # Every other self.next call is misplaced: inside an if, a loop, or followed by statements.
    stray = [n for n in ast.walk(fdef) if _is_next_call(n) and n is not final_call]
    stray.sort(key=lambda n: n.lineno)
    issues = [ParseIssue(IssueKind.NEXT_NOT_LAST, n.lineno + offset, ast.unparse(n))
              for n in stray]
    # The transition shown in the graph is the final call, or else the first misplaced one, so
    # `show` still draws something sensible for a flow that lint will reject.
    call = final_call or (stray[0] if stray else None)
    if call is None:
        return _Transition(None, (), None, ())
    if call.args and isinstance(call.args[0], ast.Dict) or \
            any(kw.arg == "condition" for kw in call.keywords):
        cases, condition, call_issues = _read_switch(call, offset)
        targets = tuple(dict.fromkeys(step for _, step in cases))
        return _Transition(call.lineno + offset, targets, None, tuple(issues + call_issues),
                           cases, condition)
    targets, foreach, call_issues = _read_next_arguments(call, offset)
    num_parallel = _num_parallel(call)
    if num_parallel is not None:
        foreach = PARALLEL_VAR
    return _Transition(call.lineno + offset, targets, foreach, tuple(issues + call_issues),
                       num_parallel=num_parallel)


def _num_parallel(call: ast.Call) -> int | None:
    """num_parallel= of a self.next call: its value when a literal, 0 for an expression (known
    when the step runs), None without it."""
    for kw in call.keywords:
        if kw.arg == "num_parallel":
            value = kw.value
            if isinstance(value, ast.Constant) and isinstance(value.value, int):
                return value.value
            return 0
    return None


def _read_switch(call: ast.Call, offset: int):
    """`self.next({value: self.step, ...}, condition="var")`: the cases, the condition, and
    what is wrong with them. Case values must be literals, as in Metaflow, so the graph is
    known before the flow runs."""
    line = call.lineno + offset
    issues, cases, condition = [], [], None
    arg = call.args[0] if len(call.args) == 1 else None
    if not isinstance(arg, ast.Dict) or not arg.keys:
        issues.append(ParseIssue(IssueKind.SWITCH_MALFORMED, line, ast.unparse(call)))
    else:
        for key, value in zip(arg.keys, arg.values):
            literal = key is not None and isinstance(key, ast.Constant)
            target = (isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
                      and value.value.id == "self")
            if not (literal and target):
                issues.append(ParseIssue(IssueKind.SWITCH_MALFORMED, line,
                                         f"{ast.unparse(key) if key else '**'}: "
                                         f"{ast.unparse(value)}"))
                continue
            cases.append((key.value, value.attr))
    for kw in call.keywords:
        if kw.arg == "condition":
            condition = _literal_identifier(kw.value)
            if condition is None:
                issues.append(ParseIssue(IssueKind.SWITCH_MALFORMED, line,
                                         f"condition={ast.unparse(kw.value)}"))
        else:
            issues.append(ParseIssue(IssueKind.SWITCH_MALFORMED, line,
                                     f"{kw.arg}={ast.unparse(kw.value)}"))
    if condition is None and not any(kw.arg == "condition" for kw in call.keywords):
        issues.append(ParseIssue(IssueKind.SWITCH_MALFORMED, line, "no condition="))
    return tuple(cases), condition, issues


def _read_next_arguments(call: ast.Call, offset: int):
    line = call.lineno + offset
    targets, issues = [], []
    for arg in call.args:
        if (isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name)
                and arg.value.id == "self"):
            targets.append(arg.attr)
        else:
            issues.append(ParseIssue(IssueKind.NEXT_BAD_ARGUMENT, line, ast.unparse(arg)))
    foreach = None
    for kw in call.keywords:
        if kw.arg == "foreach":
            foreach = _literal_identifier(kw.value)
            if foreach is None:
                issues.append(ParseIssue(IssueKind.FOREACH_NOT_LITERAL, line,
                                         ast.unparse(kw.value)))
        elif kw.arg == "num_parallel":
            if any(k.arg == "foreach" for k in call.keywords):
                issues.append(ParseIssue(IssueKind.NEXT_UNSUPPORTED_KEYWORD, line,
                                         "num_parallel with foreach"))
        else:
            issues.append(ParseIssue(IssueKind.NEXT_UNSUPPORTED_KEYWORD, line,
                                     kw.arg or "**" + ast.unparse(kw.value)))
    return tuple(targets), foreach, issues


def _literal_identifier(node: ast.expr) -> str | None:
    # foreach names an artifact, so it must be a constant that is a valid attribute name.
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
        return node.value
    return None
