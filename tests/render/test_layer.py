"""``chronum.render`` stands on the standard library and chronum's pure core only."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import chronum.render

RENDER = Path(chronum.render.__file__).parent
#: What render may import of chronum: the pure core, and itself.
ALLOWED = {"chronum.model", "chronum.errors", "chronum._lru", "chronum._args",
           "chronum.conditions"}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function, relative ones resolved."""
    package = "chronum.render"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            else:
                found.add(node.module or "")
    return found


def test_render_imports_only_the_standard_library_and_the_pure_core():
    files = sorted(RENDER.glob("*.py"))
    assert {f.name for f in files} >= {"dot.py", "svg.py", "html.py", "timeline.py"}
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "chronum":
                assert name in ALLOWED or name.startswith("chronum.render"), (path.name, name)
            else:
                assert top in sys.stdlib_module_names or top == "__future__", (path.name, name)


def test_drawing_a_run_loads_nothing_above_render():
    script = (
        "import sys, json\n"
        "from chronum.model import Flow, Step\n"
        "from chronum.render import html, svg, timeline\n"
        "flow = Flow(name='f', steps=(Step(name='a'),))\n"
        "info = {'run_id': 'r', 'status': 'succeeded', 'duration_s': 1.0}\n"
        "rows = [{'step': 'a', 'status': 'succeeded', 'attempts': 1, 'duration_s': 1.0,\n"
        "         'exit_code': 0, 'log_tail': 'hi'}]\n"
        "timeline.run_picture(flow, info, rows, [], svg.graph_for('r', flow))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('chronum')\n"
        "                        or m in ('IPython', 'ipywidgets'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    loaded = set(json.loads(out))
    package_root = {"chronum", "chronum._version"}  # what `import chronum.<anything>` loads
    assert loaded - package_root - {m for m in loaded if m.startswith("chronum.render")} \
        <= ALLOWED
