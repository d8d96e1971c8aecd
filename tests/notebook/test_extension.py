"""``%load_ext chronum`` where the notebook extra is missing, and in JupyterLite."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import chronum.notebook

# Runs in a fresh interpreter: REFUSED modules cannot be imported there, as if not installed.
PRELUDE = """
import json, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if any(name == r or name.startswith(r + ".") for r in REFUSED):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
import chronum

def error_of(call):
    try:
        call()
    except Exception as exc:
        return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    return None
"""


def _python(refused: list[str], body: str) -> subprocess.CompletedProcess[str]:
    script = f"REFUSED = {refused!r}\n" + PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)


def test_without_ipywidgets_the_extension_loads_and_shows_its_view():
    """The live view is plain HTML outputs: no widget library is needed."""
    proc = _python(["ipywidgets"], """
        from IPython.core.interactiveshell import InteractiveShell
        from chronum.notebook.view import LiveView
        from chronum.spec import loads

        shell = InteractiveShell.instance()
        print(json.dumps(error_of(lambda: chronum.load_ipython_extension(shell))))
        sent = []
        flow = loads("name: f\\nsteps:\\n  - name: a\\n    run: 'true'\\n", filename="f.yaml")
        LiveView(flow, "r1", publish=lambda *message: sent.append(message))
        print(json.dumps(len(sent)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["null", "6"]
    assert "ipywidgets" not in proc.stderr


def test_without_ipython_the_error_is_an_import_error_naming_the_extra():
    proc = _python(["IPython", "ipywidgets"], """
        print(json.dumps(error_of(lambda: chronum.load_ipython_extension(None))))
    """)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == (
        "builtins.ModuleNotFoundError: chronum: the notebook extension needs IPython; "
        "install it with: pip install 'chronum[notebook]'")


def test_another_missing_module_is_not_blamed_on_the_extra():
    # A broken install of something else keeps its own error, not a misleading hint.
    proc = _python(["chronum.notebook.view"], """
        from IPython.core.interactiveshell import InteractiveShell

        print(json.dumps(error_of(
            lambda: chronum.load_ipython_extension(InteractiveShell.instance()))))
    """)
    assert proc.returncode == 0, proc.stderr
    error = json.loads(proc.stdout)
    assert "chronum.notebook.view" in error and "Error" in error.split(":")[0], error
    assert "chronum[notebook]" not in error


def test_pyodide_is_told_apart_by_the_platform(monkeypatch: pytest.MonkeyPatch):
    """Pyodide (JupyterLite's kernel) reports ``sys.platform == "emscripten"``. Pyodide cannot
    run here, so the platform value is simulated: that is all the detection reads."""
    monkeypatch.setattr(sys, "platform", "emscripten")
    assert chronum.notebook._in_pyodide()
    monkeypatch.setattr(sys, "platform", "linux")
    assert not chronum.notebook._in_pyodide()


@pytest.mark.parametrize(("platform", "notice"), [("emscripten", True), ("linux", False)])
def test_loading_in_jupyterlite_prints_one_notice(platform: str, notice: bool):
    """The extension loads into a real IPython shell with ``sys.platform`` simulated (set after
    the imports, so only chronum's own check sees it): Pyodide cannot run here."""
    proc = _python([], f"""
        from IPython.core.interactiveshell import InteractiveShell
        import chronum.notebook.magics

        shell = InteractiveShell.instance()
        sys.platform = {platform!r}
        chronum.load_ipython_extension(shell)
        assert "chronum" in shell.magics_manager.magics["cell"]
    """)
    assert proc.returncode == 0, proc.stderr
    if notice:
        assert proc.stdout.count("\n") == 1
        assert proc.stdout.startswith("chronum: in JupyterLite (Pyodide)")
        assert "`async def` functions called with `call:`" in proc.stdout
        assert "shell, script and docker steps and plain `def` functions" in proc.stdout
    else:
        assert proc.stdout == ""
