"""The flow cache: a second load of an unchanged file skips parsing, and never changes the result.

Real files in tmp_path, a real cache folder (``CHRONUM_CACHE_DIR``). A spy on the built-in YAML
parser counts parses, so a test knows whether a load was a hit.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from chronum.errors import SpecError
from chronum.executors import ExecutorRegistry
from chronum.executors.shell import ShellExecutor
from chronum.model import Flow
from chronum.spec import ParserRegistry, _cache, _yaml, load

FLOW = """\
name: deploy
maxParallel: 2
defaultRetry: 1
backoff: {base: 0.5, factor: 3, max: 10, jitter: equal}
env: {STAGE: dev}
params: {region: eu, tier: small}
secrets: [API_TOKEN]
steps:
  - name: build
    run: make build
    retry: {limit: 3, exitCodes: [1, 75]}
    timeout: 30
  - name: test
    run: pytest
    needs: [build]
    env: {CI: "1"}
    secrets: DB_PASSWORD
    continueOnError: true
  - name: package
    executor: docker
    image: python:3.12-slim
    pull: never
    dockerArgs: [--network, none]
    run: python -m build
    needs: [test, build]
    cwd: sub
  - name: clean
    executor: python
    call: pipeline:clean
    persist: true
    needs: [package]
"""


class Loader:
    """``spec.load`` with the built-in parsers and executors, counting real YAML parses."""

    def __init__(self) -> None:
        self.parses = 0
        self.executors = ExecutorRegistry(entry_points=False)

    def __call__(self, path: Path, **kw: Any) -> Flow:
        kw.setdefault("executors", self.executors)
        return load(path, parsers=ParserRegistry(entry_points=False), **kw)


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache's entry folder (created by the first write)."""
    monkeypatch.setenv("CHRONUM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CHRONUM_FLOW_CACHE", raising=False)
    return tmp_path / "cache" / "flows"


@pytest.fixture
def loader(monkeypatch: pytest.MonkeyPatch) -> Loader:
    counting = Loader()
    parse = _yaml.parse

    def spy(text: str, file: str) -> Any:
        counting.parses += 1
        return parse(text, file)

    monkeypatch.setattr(_yaml, "parse", spy)  # a fresh ParserRegistry looks it up per load
    return counting


@pytest.fixture
def fresh(loader: Loader, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Flow]:
    """A load with the cache turned off: what a cached load must equal."""

    def _fresh(path: Path, **kw: Any) -> Flow:
        with monkeypatch.context() as m:
            m.setenv("CHRONUM_FLOW_CACHE", "0")
            return loader(path, **kw)

    return _fresh


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def entries(flows: Path) -> list[Path]:
    return sorted(flows.glob("*.pickle")) if flows.exists() else []


def assert_same(got: Flow, want: Flow) -> None:
    """Equal, including the fields equality leaves out, and immutable like a fresh flow."""
    assert got == want
    assert (got.source, got.base_dir) == (want.source, want.base_dir)
    assert [s.location for s in got.steps] == [s.location for s in want.steps]
    assert [s.options for s in got.steps] == [s.options for s in want.steps]
    for mapping in (got.env, got.params, *(s.env for s in got.steps),
                    *(s.options for s in got.steps)):
        assert isinstance(mapping, MappingProxyType)


def test_a_cached_load_equals_a_fresh_load(tmp_path: Path, flows: Path, loader: Loader,
                                           fresh: Callable[..., Flow]) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    want = fresh(path)
    first = loader(path)
    assert len(entries(flows)) == 1
    second = loader(path)
    assert loader.parses == 2  # the fresh load and the first cached one; the second is a hit
    assert_same(first, want)
    assert_same(second, want)
    assert second.step("package").options["dockerArgs"] == ["--network", "none"]
    assert second.step("build").retry.exit_codes == (1, 75)


def test_json_flows_are_cached_too(tmp_path: Path, flows: Path, loader: Loader,
                                   fresh: Callable[..., Flow]) -> None:
    path = write(tmp_path, "flow.json", json.dumps(
        {"name": "j", "steps": [{"name": "a", "run": "true"}]}))
    loader(path)
    assert_same(loader(path), fresh(path))
    assert loader.parses == 2
    assert len(entries(flows)) == 1


def test_an_edited_file_gives_the_new_flow(tmp_path: Path, flows: Path,
                                           loader: Loader) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path)
    write(tmp_path, "flow.yaml", FLOW.replace("maxParallel: 2", "maxParallel: 5"))
    assert loader(path).max_parallel == 5
    assert loader.parses == 2
    assert len(entries(flows)) == 2


def test_the_same_bytes_at_another_path_are_another_entry(
        tmp_path: Path, flows: Path, loader: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    base_dirs = []
    for folder in ("a", "b"):  # the same relative name, from two working directories
        (tmp_path / folder).mkdir()
        write(tmp_path / folder, "flow.yaml", FLOW)
        monkeypatch.chdir(tmp_path / folder)
        flow = loader(Path("flow.yaml"))
        base_dirs.append(flow.base_dir)
        assert flow.source == "flow.yaml"
    assert base_dirs == [tmp_path / "a", tmp_path / "b"]
    spelled = tmp_path / "b" / "flow.yaml"  # the same file, named otherwise: another source
    assert loader(spelled).steps[0].location.file == str(spelled)  # type: ignore[union-attr]
    assert loader.parses == 3
    assert len(entries(flows)) == 3


def test_params_are_applied_to_the_cached_flow(tmp_path: Path, flows: Path, loader: Loader,
                                               fresh: Callable[..., Flow]) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path, params={"region": "us"})  # written without the params
    got = loader(path, params={"tier": "large"})
    assert loader.parses == 1
    assert dict(got.params) == {"region": "eu", "tier": "large"}
    assert_same(got, fresh(path, params={"tier": "large"}))
    assert dict(loader(path).params) == {"region": "eu", "tier": "small"}


def test_an_unknown_param_on_a_cached_flow_gives_the_same_error(
        tmp_path: Path, flows: Path, loader: Loader, fresh: Callable[..., Flow]) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path)
    with pytest.raises(SpecError) as cached:
        loader(path, params={"regoin": "us"})
    with pytest.raises(SpecError) as uncached:
        fresh(path, params={"regoin": "us"})
    assert str(cached.value) == str(uncached.value)
    assert str(cached.value) == (f"{path}:6:9: params: unknown parameter 'regoin' "
                                 f"(did you mean 'region'?)")


def test_a_flow_with_problems_is_reported_every_time(tmp_path: Path, flows: Path,
                                                     loader: Loader) -> None:
    path = write(tmp_path, "flow.yaml", "name: bad\nsteps:\n  - name: a\n    run: x\n"
                                        "    needs: [b]\n")
    messages = []
    for _ in range(2):
        with pytest.raises(SpecError) as info:
            loader(path)
        messages.append(str(info.value))
    assert messages[0] == messages[1] == f"{path}:5:13: steps[0].needs[0]: unknown step 'b'"
    assert loader.parses == 2
    assert entries(flows) == []


def test_an_executor_registered_over_a_builtin_bypasses_the_cache(
        tmp_path: Path, flows: Path, loader: Loader) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path)  # an entry made with the built-in shell executor
    custom = ExecutorRegistry(entry_points=False)
    custom.register("shell", ShellExecutor)
    assert not custom.is_builtin("shell") and custom.is_builtin("docker")
    loader(path, executors=custom)
    assert loader.parses == 2  # the entry was not used ...
    other = write(tmp_path, "other.yaml", "name: o\nsteps:\n  - name: a\n    run: x\n")
    loader(other, executors=custom)
    assert len(entries(flows)) == 1  # ... and nothing is written for it


def test_a_registered_parser_bypasses_the_cache(tmp_path: Path, flows: Path,
                                                loader: Loader) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    parsers = ParserRegistry(entry_points=False)
    seen: list[str] = []

    def parse(text: str, file: str) -> Any:
        seen.append(file)
        return _yaml.parse(text, file)

    parsers.register("yaml", parse)
    for _ in range(2):
        load(path, parsers=parsers, executors=loader.executors)
    assert len(seen) == 2
    assert entries(flows) == []


def test_python_flows_are_never_cached(tmp_path: Path, flows: Path) -> None:
    path = write(tmp_path, "pipeline.py", textwrap.dedent("""\
        import chronum

        flow = chronum.Flow("py")
        flow.shell("build", "true")
    """))
    for _ in range(2):
        assert load(path).name == "py"
    assert entries(flows) == []


def test_a_corrupt_entry_is_ignored_and_rewritten(tmp_path: Path, flows: Path,
                                                  loader: Loader) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    want = loader(path)
    [entry] = entries(flows)
    for junk in (b"", b"not a pickle", entry.read_bytes()[:100]):
        entry.write_bytes(junk)
        assert_same(loader(path), want)
        assert entry.read_bytes() != junk
    parses = loader.parses
    loader(path)
    assert loader.parses == parses  # the rewritten entry is used


def test_an_entry_under_another_key_is_not_used(tmp_path: Path, flows: Path,
                                                loader: Loader) -> None:
    a = write(tmp_path, "a.yaml", "name: a\nsteps:\n  - name: x\n    run: x\n")
    b = write(tmp_path, "b.yaml", "name: b\nsteps:\n  - name: x\n    run: x\n")
    loader(a)
    before = set(entries(flows))
    loader(b)
    [entry_b] = set(entries(flows)) - before
    [entry_a] = before
    shutil.copyfile(entry_a, entry_b)
    assert loader(b).name == "b"
    assert loader.parses == 3


def test_an_entry_naming_other_code_is_not_run(tmp_path: Path, flows: Path,
                                               loader: Loader) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path)
    [entry] = entries(flows)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return os.mkdir, (str(marker),)

    entry.write_bytes(pickle.dumps(("chronum-flow", _cache.VERSION, entry.stem, Evil())))
    assert loader(path).name == "deploy"
    assert not marker.exists()
    assert loader.parses == 2


def test_a_cache_folder_that_cannot_be_written_still_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: Loader,
        fresh: Callable[..., Flow]) -> None:
    blocker = write(tmp_path, "not-a-folder", "")
    monkeypatch.setenv("CHRONUM_CACHE_DIR", str(blocker))  # folders cannot be made under a file
    path = write(tmp_path, "flow.yaml", FLOW)
    assert_same(loader(path), fresh(path))
    assert_same(loader(path), fresh(path))
    assert blocker.read_text() == ""


def test_a_group_writable_cache_folder_is_not_read(tmp_path: Path, flows: Path,
                                                   loader: Loader,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path)
    flows.chmod(0o770)
    with caplog.at_level("WARNING", logger="chronum"):
        loader(path)
    assert loader.parses == 2
    assert "can be written by other users" in caplog.text and str(flows) in caplog.text
    flows.chmod(0o700)
    loader(path)
    assert loader.parses == 2


def test_a_group_writable_entry_is_not_read(tmp_path: Path, flows: Path,
                                            loader: Loader) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path)
    [entry] = entries(flows)
    entry.chmod(0o620)
    loader(path)
    assert loader.parses == 2


@pytest.mark.parametrize("value", ["0", "off"])
def test_chronum_flow_cache_0_writes_nothing(tmp_path: Path, flows: Path, loader: Loader,
                                             monkeypatch: pytest.MonkeyPatch,
                                             value: str) -> None:
    monkeypatch.setenv("CHRONUM_FLOW_CACHE", value)
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path)
    loader(path)
    assert loader.parses == 2
    assert not flows.parent.exists()


def test_the_cache_folder_is_private(tmp_path: Path, flows: Path, loader: Loader) -> None:
    loader(write(tmp_path, "flow.yaml", FLOW))
    [entry] = entries(flows)
    assert flows.stat().st_mode & 0o777 == 0o700
    assert entry.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in flows.iterdir()] == [entry.name]  # no temp file left behind


@pytest.mark.parametrize(("environ", "want"), [
    ({"CHRONUM_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/c"),
    ({"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/chronum"),
    ({"XDG_CACHE_HOME": "relative", "HOME": "/h"}, "/h/.cache/chronum"),
    ({"CHRONUM_CACHE_DIR": "/c", "CHRONUM_FLOW_CACHE": "0"}, None),
], ids=["chronum", "xdg", "relative-xdg-ignored", "off"])
def test_where_the_cache_lives(environ: dict[str, str], want: str | None,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", environ.get("HOME", "/h"))
    assert _cache.cache_dir(environ) == want


def test_pruning_keeps_the_folder_bounded(tmp_path: Path, flows: Path,
                                          loader: Loader) -> None:
    flows.mkdir(parents=True, mode=0o700)
    for i in range(_cache.MAX_ENTRIES + 10):
        old = flows / f"{i:040x}.pickle"
        old.write_bytes(b"stale")
        os.utime(old, (1_000_000 + i, 1_000_000 + i))
    path = write(tmp_path, "flow.yaml", FLOW)
    loader(path)
    kept = entries(flows)
    assert len(kept) == _cache.KEEP_ENTRIES
    assert f"{_cache.MAX_ENTRIES + 9:040x}.pickle" in {p.name for p in kept}  # newest stale
    assert f"{0:040x}.pickle" not in {p.name for p in kept}  # the oldest went first
    loader(path)
    assert loader.parses == 1  # the new entry survived


def test_a_fresh_interpreter_reads_the_cache_without_yaml(tmp_path: Path, flows: Path) -> None:
    path = write(tmp_path, "flow.yaml", FLOW)
    script = ("import sys, chronum.api\n"
              f"flow = chronum.api.load({str(path)!r}, params={{'tier': 'large'}})\n"
              "print('yaml' in sys.modules, flow.name, len(flow.steps), flow.params['tier'])\n")
    outputs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=True, timeout=60).stdout.split() for _ in range(2)]
    assert outputs == [["True", "deploy", "4", "large"], ["False", "deploy", "4", "large"]]
    assert len(entries(flows)) == 1


def test_the_cli_applies_p_to_a_cached_flow(tmp_path: Path, flows: Path) -> None:
    path = write(tmp_path, "flow.yaml", "name: p\nparams: {region: eu}\nsteps:\n"
                                        "  - name: check\n"
                                        "    run: test \"$CHRONUM_PARAM_REGION\" = us\n")
    env = {**os.environ, "CHRONUM_DB": str(tmp_path / "runs.db")}

    def run(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "chronum", "run", str(path), *args,
                               "--format", "json"], capture_output=True, text=True, env=env,
                              timeout=60)
        assert proc.returncode in (0, 1), proc.stderr
        status: str = json.loads(proc.stdout)["status"]
        return status

    assert run("-p", "region=us") == "succeeded"
    [entry] = entries(flows)
    os.utime(entry, (1_000_000, 1_000_000))
    assert run("-p", "region=us") == "succeeded"
    assert entry.stat().st_mtime > 1_000_000  # a hit refreshes the entry
    assert run() == "failed"  # the default region, eu: the params were not cached
