"""Whatever the input, the loader answers with a Flow or a SpecError whose problems have lines."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronum.errors import SpecError
from chronum.executors import ExecutorRegistry
from chronum.model import Flow
from chronum.spec import loads
from chronum.spec._build import BACKOFF_KEYS, FLOW_KEYS, RETRY_KEYS, STEP_KEYS

from .fakes import FakeDocker, FakePython, FakeShell

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

REGISTRY = ExecutorRegistry(builtins={}, entry_points=False)
for _name, _factory in (("shell", FakeShell), ("python", FakePython), ("docker", FakeDocker)):
    REGISTRY.register(_name, _factory)

NAMES = ["a", "b", "c", "build", "te st", ""]
scalars = (st.none() | st.booleans() | st.integers(-3, 5) | st.floats(allow_nan=True)
           | st.sampled_from([*NAMES, "full", "none", "python", "shell", "dask", "m:f", "1e3"]))
values = (scalars | st.lists(scalars, max_size=3)
          | st.dictionaries(st.sampled_from(sorted(BACKOFF_KEYS | RETRY_KEYS)), scalars,
                            max_size=3))
needs = st.sampled_from(NAMES) | st.lists(st.sampled_from(NAMES), max_size=3)
step = st.fixed_dictionaries(
    {"name": st.sampled_from(NAMES)},
    optional={"needs": needs, "executor": st.sampled_from(["shell", "python", "dockr", "docker"]),
              **{k: values for k in sorted(STEP_KEYS - {"name", "needs", "executor"})},
              "neds": values, "image": values, 1: values},
)
flow = st.fixed_dictionaries(
    {"name": st.sampled_from(["f", "", 3]), "steps": st.lists(step, max_size=4)},
    optional={**{k: values for k in sorted(FLOW_KEYS - {"name", "steps"})}, "maxParalel": values},
)


def _check(text: str | bytes) -> None:
    try:
        result = loads(text, filename="fuzz.yaml", executors=REGISTRY)
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.location.file == "fuzz.yaml"
            assert problem.location.line >= 1, str(problem)
            assert problem.message
    else:
        assert isinstance(result, Flow)


@FUZZ
@given(flow)
def test_structured_flows(doc: dict[str, Any]) -> None:
    _check(yaml.safe_dump(doc, sort_keys=False))


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(
    list("{}[]:-,&*!|>'\"#%@` \n\t")), max_size=200))
def test_random_text(text: str) -> None:
    _check(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _check(data)
