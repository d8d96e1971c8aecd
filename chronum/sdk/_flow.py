"""``chronum.Flow``: a flow written in Python, checked by the same validator as YAML.

Registering a step only records it (with the file and line of its decorator or call); the flow
is validated when it is built (run, drawn, written as YAML), because ``needs`` may name steps
registered later. Building turns the registrations into the document a YAML file would hold and
hands it to ``chronum.spec``'s validator, so every rule, default and message is the YAML one;
problems are then moved to the decorator's line. The decorator returns the function itself, so
its signature and return type stay what the user wrote (for mypy, and for calling it directly).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, Unpack, overload

from ..api import Run, RunKeywords, blocking, execute, in_running_loop, options_of, run
from ..errors import Location, Problem, SpecError
from ..executors.python import CONTEXT_NAMES, call_plan
from ..model import Backoff, RetryPolicy
from ..model import Flow as FlowModel
from ..notebook.names import cell_name
from ..session import register_functions
from . import _registry
from ._notebook import arun_with_view, live_view_fits
from ._signature import call_target

if TYPE_CHECKING:
    from ..render.dot import Graph

__all__ = ["Flow", "call_target"]

P = ParamSpec("P")
R = TypeVar("R")

#: A step named by its name or by the decorated function itself.
StepRef = str | Callable[..., Any]
Needs = StepRef | Iterable[StepRef] | None
Retry = int | Mapping[str, Any] | RetryPolicy | None
#: Seconds, or a duration as YAML writes it: ``"90s"``, ``"10m"``, ``"2h"``, ``"1h30m"``.
Duration = float | str | None
#: ``foreach=``: a step (its name or function) returning the items, a list, or {"param": NAME}.
Foreach = StepRef | Iterable[Any] | Mapping[str, str] | None

_STEPS_PATH = re.compile(r"steps\[(\d+)\](.*)\Z", re.S)


@dataclass(slots=True)
class _Spec:
    """One registered step: its YAML keys, where it was written, its function (if any)."""

    name: str
    file: str
    line: int
    doc: dict[str, Any]
    needs: tuple[StepRef, ...] = ()
    func: Callable[..., Any] | None = None
    #: ``foreach=`` naming a step (by name or function): its value is the list of items.
    source: StepRef | None = None


def _caller(depth: int = 2) -> tuple[str, int]:
    """File and line of the user's call, ``depth`` frames up (``inspect.stack`` would read
    the source of every frame to find the same two values)."""
    frame = sys._getframe(depth)
    return cell_name(frame.f_code.co_filename), frame.f_lineno


def _origin(file: str) -> str | None:
    """The .py file a flow was written in, if it is a real file (not a notebook cell)."""
    if file.startswith("<") or not file.endswith(".py") or "ipykernel_" in file:
        return None
    return os.path.abspath(file) if os.path.isfile(file) else None


def _camel(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``exit_codes`` -> ``exitCodes``: the SDK speaks snake_case, the document camelCase."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        head, *rest = str(key).split("_")
        out[head + "".join(w.title() for w in rest)] = value
    return out


def _backoff_doc(backoff: Mapping[str, Any] | Backoff) -> dict[str, Any]:
    if isinstance(backoff, Backoff):
        return {"base": backoff.base, "factor": backoff.factor, "max": backoff.max,
                "jitter": backoff.jitter}
    return dict(backoff)


def _retry_doc(retry: Retry) -> Any:
    if isinstance(retry, RetryPolicy):
        doc: dict[str, Any] = {"limit": retry.limit, "backoff": _backoff_doc(retry.backoff)}
        if retry.exit_codes is not None:
            doc["exitCodes"] = list(retry.exit_codes)
        return doc
    if isinstance(retry, Mapping):
        doc = _camel(retry)
        if isinstance(doc.get("backoff"), Backoff):
            doc["backoff"] = _backoff_doc(doc["backoff"])
        return doc
    return retry


class Flow:
    """A flow defined in Python: ``@flow.step()`` functions, ``flow.shell`` and ``flow.script``.

    The options are the YAML keys in snake_case; ``flow.build()`` gives the validated
    ``chronum.model.Flow``, ``flow.run()`` / ``await flow.arun()`` run it, ``flow.to_yaml()``
    writes it as YAML.
    """

    def __init__(self, name: str, *, max_parallel: int | None = None,
                 stop_on_fail: bool | None = None, default_retry: int | None = None,
                 default_timeout: Duration = None,
                 backoff: Mapping[str, Any] | Backoff | None = None,
                 env: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None, cache: bool | None = None,
                 timeout: Duration = None, secrets: Names = None,
                 dask: str | Mapping[str, Any] | None = None) -> None:
        frame = sys._getframe(1)
        self._file, self._line = cell_name(frame.f_code.co_filename), frame.f_lineno
        self.name = name
        doc: dict[str, Any] = {"name": name}
        for key, value in (("maxParallel", max_parallel), ("stopOnFail", stop_on_fail),
                           ("defaultRetry", default_retry), ("defaultTimeout", default_timeout),
                           ("env", dict(env) if env is not None else None),
                           ("params", dict(params) if params is not None else None),
                           ("cache", cache), ("timeout", timeout)):
            if value is not None:
                doc[key] = value
        if backoff is not None:
            doc["backoff"] = _backoff_doc(backoff)
        if secrets is not None:
            doc["secrets"] = _names(secrets)
        if dask is not None:  # ``dask="tcp://host:8786"`` is ``dask: {address: ...}``
            doc["dask"] = {"address": dask} if isinstance(dask, str) else dict(dask)
        self._doc = doc
        self._specs: list[_Spec] = []
        #: Positions in ``_specs`` by step name (several when a name is, wrongly, reused).
        self._positions: dict[str, list[int]] = {}
        self._by_func: dict[int, str] = {}
        self._built: tuple[FlowModel, dict[str, Callable[..., Any]]] | None = None

    # -- registering steps -------------------------------------------------------------------

    @overload
    def step(self, func: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def step(self, name: str | None = None, *, needs: Needs = None, retry: Retry = None,
             timeout: Duration = None, executor: str = "python",
             continue_on_error: bool = False, persist: bool = False,
             env: Mapping[str, Any] | None = None, cwd: str | None = None,
             cache: bool | None = None, cache_key: str | None = None,
             cache_for: Duration = None, inputs: Paths = None,
             outputs: Paths = None, isolate: bool | str = False,
             if_: str | None = None,
             foreach: Foreach = None, matrix: Mapping[str, Any] | None = None,
             concurrency: int | None = None, secrets: Names = None,
             options: Mapping[str, Any] | None = None,
             ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def step(self, name: Any = None, *, needs: Needs = None, retry: Retry = None,
             timeout: Duration = None, executor: str = "python",
             continue_on_error: bool = False, persist: bool = False,
             env: Mapping[str, Any] | None = None, cwd: str | None = None,
             cache: bool | None = None, cache_key: str | None = None,
             cache_for: Duration = None, inputs: Paths = None,
             outputs: Paths = None, isolate: bool | str = False, if_: str | None = None,
             foreach: Foreach = None, matrix: Mapping[str, Any] | None = None,
             concurrency: int | None = None, secrets: Names = None,
             options: Mapping[str, Any] | None = None) -> Any:
        """Register a function as a step: ``@flow.step()`` or ``@flow.step("name", retry=2)``.

        Its parameters named like other steps receive their return values (and make it need
        them); ``ctx``/``context`` receives the step context. ``isolate=True`` runs it in a
        child process, which cancel and timeout stop (``isolate: process``). ``if_`` is the
        step's ``if:`` condition (``if`` is a Python keyword). Returns the function unchanged.
        ``foreach=`` fans the step out: a step (its name or function) whose value is the list
        of items, a list, or ``{"param": NAME}``; ``matrix={key: [values]}`` over every
        combination. Each instance gets its item as the parameter ``item`` (and a matrix's
        values by key). ``secrets=`` names environment variables the step gets, masked;
        ``options=`` holds the executor's own keys, as in YAML.
        """
        file, line = _caller()
        keys = {"retry": retry, "timeout": timeout, "continueOnError": continue_on_error,
                "persist": persist, "env": env, "cwd": cwd,
                "isolate": "process" if isolate is True else (isolate or None), "if": if_,
                **_caching(cache, cache_key, cache_for, inputs, outputs),
                "matrix": matrix, "concurrency": concurrency, "secrets": secrets}
        source, items = _foreach(foreach)

        def register(func: Callable[P, R]) -> Callable[P, R]:
            step_name = name if isinstance(name, str) else getattr(func, "__name__", "")
            doc = {**_options(options), "name": step_name, "executor": executor,
                   "call": call_target(func)}
            self._add(_Spec(step_name, file, line, _with(doc, {**keys, "foreach": items}),
                            _needs(needs), func, source))
            return func

        if callable(name):  # @flow.step without parentheses
            func, name = name, None
            return register(func)
        return register

    def shell(self, name: str, command: str, *, needs: Needs = None, retry: Retry = None,
              timeout: Duration = None, continue_on_error: bool = False,
              env: Mapping[str, Any] | None = None, cwd: str | None = None,
              shell: str | None = None, cache: bool | None = None,
              cache_key: str | None = None, cache_for: Duration = None,
              inputs: Paths = None, outputs: Paths = None, if_: str | None = None,
              foreach: Foreach = None, matrix: Mapping[str, Any] | None = None,
              concurrency: int | None = None, secrets: Names = None,
              detach: str | None = None, executor: str = "shell",
              options: Mapping[str, Any] | None = None) -> str:
        """Add a shell step; returns its name, to use in another step's ``needs``.

        ``foreach``/``matrix``/``concurrency`` fan it out as for ``step``; each instance
        gets its item as ``$CHRONUM_ITEM`` and a matrix's values as ``$CHRONUM_MATRIX_<KEY>``.
        ``executor=`` runs the command elsewhere, with that executor's own keys in
        ``options=``: ``executor="docker", options={"image": "alpine"}``.
        """
        file, line = _caller()
        source, items = _foreach(foreach)
        head = {**_options(options), "name": name, "run": command}
        if executor != "shell":
            head["executor"] = executor
        doc = _with(head, {
            "retry": retry, "timeout": timeout, "continueOnError": continue_on_error,
            "env": env, "cwd": cwd, "shell": shell, "if": if_,
            **_caching(cache, cache_key, cache_for, inputs, outputs),
            "foreach": items, "matrix": matrix, "concurrency": concurrency,
            "secrets": secrets, "detach": detach})
        self._add(_Spec(name, file, line, doc, _needs(needs), source=source))
        return name

    def script(self, name: str, path: str, *, needs: Needs = None, retry: Retry = None,
               timeout: Duration = None, continue_on_error: bool = False,
               env: Mapping[str, Any] | None = None, cwd: str | None = None,
               if_: str | None = None, cache: bool | None = None,
               cache_key: str | None = None, cache_for: Duration = None,
               inputs: Paths = None, outputs: Paths = None, foreach: Foreach = None,
               matrix: Mapping[str, Any] | None = None, concurrency: int | None = None,
               secrets: Names = None, detach: str | None = None, executor: str = "python",
               options: Mapping[str, Any] | None = None) -> str:
        """Add a python script step (run with this interpreter, relative to the flow's folder).

        It takes the keys of ``shell``: fan-out (each instance gets ``$CHRONUM_ITEM``),
        caching, ``secrets=``, ``detach=``; ``executor="dask"`` runs it on the cluster.
        """
        file, line = _caller()
        source, items = _foreach(foreach)
        doc = _with({**_options(options), "name": name, "executor": executor, "run": path}, {
            "retry": retry, "timeout": timeout, "continueOnError": continue_on_error,
            "env": env, "cwd": cwd, "if": if_,
            **_caching(cache, cache_key, cache_for, inputs, outputs),
            "foreach": items, "matrix": matrix, "concurrency": concurrency,
            "secrets": secrets, "detach": detach})
        self._add(_Spec(name, file, line, doc, _needs(needs), source=source))
        return name

    def _add(self, spec: _Spec) -> None:
        self._built = None
        positions = self._positions.setdefault(spec.name, [])
        for i in positions:
            if _same_definition(self._specs[i], spec):
                self._specs[i] = spec  # a notebook cell run again redefines its steps
                break
        else:
            positions.append(len(self._specs))
            self._specs.append(spec)
        if spec.func is not None:
            self._by_func[id(spec.func)] = spec.name

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self._specs)

    # -- building ----------------------------------------------------------------------------

    def build(self) -> FlowModel:
        """The validated ``chronum.model.Flow``; raises ``SpecError`` at the offending lines."""
        return self._compile()[0]

    def _compile(self, *, source: str | None = None, base_dir: Path | None = None
                 ) -> tuple[FlowModel, dict[str, Callable[..., Any]]]:
        """The model and the step functions by step name (cached until a step is added)."""
        if self._built is not None and source is None and base_dir is None:
            return self._built
        problems, doc, functions = self.document()
        from ..executors import default_registry
        from ..spec._build import build

        origin = _origin(self._file)
        if base_dir is None:
            base_dir = Path(origin).parent if origin is not None else Path.cwd()
        try:
            model = build(doc, file=self._file, base_dir=base_dir,
                          source=source if source is not None else origin,
                          executors=default_registry)
        except SpecError as exc:
            problems.extend(self._relocate(p) for p in exc.problems)
        if problems:
            raise SpecError(problems)
        register_functions(model, functions)
        built = (model, functions)
        if source is None and base_dir is None:
            self._built = built
        return built

    def document(self) -> tuple[list[Problem], dict[str, Any], dict[str, Callable[..., Any]]]:
        """The flow as a YAML document (``needs`` inferred), the SDK's own problems, and the
        step functions by step name."""
        names = {spec.name for spec in self._specs}
        problems: list[Problem] = []
        functions: dict[str, Callable[..., Any]] = {}
        steps: list[dict[str, Any]] = []
        for spec in self._specs:
            needs = [self._need_name(spec, ref, problems) for ref in spec.needs]
            if spec.func is not None:
                functions[spec.name] = spec.func
                needs.extend(self._inferred(spec, names, problems))
            doc = spec.doc
            if spec.source is not None:
                doc = {**doc, "foreach": {"from": self._need_name(spec, spec.source, problems)}}
            if needs:
                doc = {**doc, "needs": list(dict.fromkeys(n for n in needs if n))}
            steps.append(doc)
        return problems, {**self._doc, "steps": steps}, functions

    def _inferred(self, spec: _Spec, names: set[str], problems: list[Problem]) -> list[str]:
        assert spec.func is not None
        out = []
        # what each instance of a fan-out step gets
        given = _item_names(spec.doc) if spec.source is None else frozenset({"item"})
        for pname, required, _ in call_plan(spec.func).params:
            if pname in given:
                continue
            if pname in names:
                out.append(pname)
            elif required and pname not in CONTEXT_NAMES:
                from ..spec._checks import did_you_mean

                hint = did_you_mean(pname, names) or "give it a default, or add a step of " \
                    "that name"
                func_name = getattr(spec.func, "__name__", spec.name)
                problems.append(Problem(
                    Location(spec.file, spec.line, 0, spec.name),
                    f"parameter {pname!r} of {func_name}() matches no step and has no default",
                    hint))
        return out

    def _need_name(self, spec: _Spec, ref: StepRef, problems: list[Problem]) -> str:
        if isinstance(ref, str):
            return ref
        name = self._by_func.get(id(ref))
        if name is None:
            what = getattr(ref, "__name__", repr(ref))
            problems.append(Problem(Location(spec.file, spec.line, 0, f"{spec.name}.needs"),
                                    f"{what}() is not a step of flow {self.name!r}",
                                    "decorate it with @flow.step() or name the step"))
            return ""
        return name

    def _relocate(self, problem: Problem) -> Problem:
        """A validator problem at ``steps[i]...`` moved to step i's decorator or call."""
        path = problem.location.path
        match = _STEPS_PATH.match(path)
        if match is None:
            return Problem(Location(self._file, self._line, 0, path), problem.message,
                           problem.hint)
        spec = self._specs[int(match.group(1))]
        hint = problem.hint
        if problem.message.startswith("duplicate step name"):
            first = next(s for s in self._specs if s.name == spec.name)
            where = "" if first.file == spec.file else f"{first.file}:"
            hint = f"the first is on line {where}{first.line}"
        return Problem(Location(spec.file, spec.line, 0, spec.name + match.group(2)),
                       problem.message, hint)

    # -- running, drawing, writing ------------------------------------------------------------

    def run(self, **options: Unpack[RunKeywords]) -> Run:
        """Run the flow to the end (blocking). In a notebook cell it blocks the cell and
        shows the live view; the kernel's Stop button cancels it (``await flow.arun()`` keeps
        the view's Cancel button working too).

        Options are those of ``chronum.run`` (``db=``, ``max_parallel=``, ``params=``, ...).
        A failed run raises nothing; ``run.raise_for_status()`` does.
        """
        _refuse_while_loading()
        if in_running_loop():  # a notebook cell: blocks it, with the live view in a kernel
            checked = options_of(options)
            if live_view_fits(checked):
                result: Run = blocking(lambda: arun_with_view(self, checked))
                return result
        return run(self, **options)

    async def arun(self, *, view: bool | None = None, **options: Unpack[RunKeywords]) -> Run:
        """Run the flow on the running loop; in a Jupyter kernel, with the live view of
        ``%%chronum`` (``view=False`` turns it off)."""
        _refuse_while_loading()
        checked = options_of(options)
        if view is not False and live_view_fits(checked):
            return await arun_with_view(self, checked)
        return await execute(self, checked)

    def graph(self) -> Graph:
        """The flow's graph: DOT text, drawn as SVG in a notebook when graphviz is installed."""
        from ..render.dot import Graph

        return Graph(self.build())

    def to_yaml(self) -> str:
        """The same flow as YAML; every python step must be an importable module function."""
        from ._yaml import to_yaml

        return to_yaml(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        try:
            return self.graph()._repr_mimebundle_(include, exclude)
        except SpecError as exc:
            return {"text/plain": f"{self!r}\n{exc}"}

    def __repr__(self) -> str:
        n = len(self._specs)
        return f"<chronum.Flow {self.name!r}: {n} step{'s' if n != 1 else ''}>"


def _with(doc: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` plus the options that differ from the YAML defaults, as YAML keys."""
    for key, value in options.items():
        if value is None or (value is False and key != "cache"):
            continue
        if key == "retry":
            value = _retry_doc(value)
        elif key in ("env", "matrix"):
            value = dict(value)
        elif key == "secrets":
            value = _names(value)
        doc[key] = value
    return doc


Paths = str | Sequence[str] | None
#: ``secrets=``: one environment variable name, or several.
Names = str | Sequence[str] | None


def _names(names: str | Sequence[str]) -> Any:
    """``secrets=``: a name or a list, as YAML takes them (anything else is left for the
    validator to report)."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        return names
    return list(names)


def _options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options=``: the executor's own keys (``image``, ``docker_args`` or ``dockerArgs``)
    as YAML keys; the named parameters come after them, so they win."""
    return {} if options is None else _camel(options)


def _caching(cache: bool | None, cache_key: str | None, cache_for: Duration,
             inputs: Paths, outputs: Paths) -> dict[str, Any]:
    """The caching options of a step as YAML keys (``cache=False`` opts a step out)."""
    return {"cache": cache, "cacheKey": cache_key, "cacheFor": cache_for,
            "inputs": [inputs] if isinstance(inputs, str) else
            (list(inputs) if inputs is not None else None),
            "outputs": [outputs] if isinstance(outputs, str) else
            (list(outputs) if outputs is not None else None)}


def _foreach(foreach: Foreach) -> tuple[StepRef | None, Any]:
    """``foreach=``: (the step whose value holds the items, or the YAML ``foreach`` value)."""
    if foreach is None:
        return None, None
    if isinstance(foreach, str) or callable(foreach):
        return foreach, None
    if isinstance(foreach, Mapping):
        return None, dict(foreach)
    return None, list(foreach)


def _item_names(doc: Mapping[str, Any]) -> frozenset[str]:
    """Parameters an instance of a fan-out step is given: ``item``, and a matrix's keys."""
    if doc.get("foreach") is None and doc.get("matrix") is None:
        return frozenset()
    matrix = doc.get("matrix")
    keys = [k for k in matrix if isinstance(k, str)] if isinstance(matrix, Mapping) else []
    return frozenset(["item", *keys])


def _needs(needs: Needs) -> tuple[StepRef, ...]:
    if needs is None:
        return ()
    if isinstance(needs, str) or callable(needs):
        return (needs,)
    return tuple(needs)


def _same_definition(old: _Spec, new: _Spec) -> bool:
    """A step registered again from a notebook cell run again: replace it, do not clash.
    In a real file, the same name twice is an error, as in YAML."""
    if _origin(old.file) is not None or _origin(new.file) is not None:
        return False
    if old.func is None or new.func is None:
        return old.func is new.func and old.doc.get("executor") == new.doc.get("executor")
    return bool(getattr(old.func, "__name__", None) == getattr(new.func, "__name__", None))


def _refuse_while_loading() -> None:
    """``chronum run pipeline.py`` imports the file: a bare ``flow.run()`` in it would start a
    second run from inside the first (and ``chronum resume``, ``chronum.show`` load it too)."""
    if _registry.LOADING:
        file, line = _caller(3)
        raise SpecError.single(file, "the flow is run while the file is being loaded",
                               'put `flow.run()` under `if __name__ == "__main__":`', line=line)
