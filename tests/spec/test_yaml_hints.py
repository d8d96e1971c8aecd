"""PyYAML's syntax errors said plainly: bad indentation, tabs, ': ' in a value; each at the
line and column the editor shows."""

from __future__ import annotations

import pytest

from chronum.errors import SpecError
from chronum.spec import loads


@pytest.mark.parametrize(("text", "expected"), [
    ("steps:\n  - name: a\n    run: echo\n   needs: [b]\n",
     "f.yaml:4:4: bad indentation: expected 4 spaces, found 3 (indent it as line 3 is)"),
    ("name: x\nsteps:\n  - name: a\n    run: echo\n     timeout: 3\n",
     "f.yaml:5:6: bad indentation: expected 4 spaces, found 5 (indent it as line 4 is)"),
    ("steps:\n    - name: a\n      run: x\n  - name: b\n",
     "f.yaml:4:3: bad indentation: expected 4 spaces, found 2 (indent it as line 2 is)"),
    # a block scalar's text is not structure: the line after it is judged by the keys
    ("name: f\nsteps:\n  - name: a\n    run: |\n      echo hi\n        more\n     needs: [b]\n",
     "f.yaml:7:6: bad indentation: expected 4 spaces, found 5 (indent it as line 4 is)"),
    ("steps:\n  - name: a\n\trun: echo\n",
     "f.yaml:3:1: tabs are not allowed in YAML indentation; use spaces"),
    ("steps:\n  - name: a\n  \trun: echo\n",
     "f.yaml:3:3: tabs are not allowed in YAML indentation; use spaces"),
    ("steps:\n  - name: a\n    run: echo a: b\n",
     "f.yaml:3:16: a ': ' inside an unquoted value starts a mapping (put the value in quotes)"),
    # nothing plainer to say: PyYAML's own words, with its context
    ("name: f\nsteps: [a\n",
     "f.yaml:3:1: did not find expected ',' or ']' (while parsing a flow sequence on line 2)"),
], ids=["one-less", "one-more", "dedented-item", "after-block-scalar", "tab", "tab-after-spaces",
        "colon-in-value", "unclosed-list"])
def test_syntax_errors_are_said_plainly(text, expected):
    with pytest.raises(SpecError) as caught:
        loads(text, filename="f.yaml")
    assert str(caught.value) == expected


def test_a_tab_inside_a_value_is_text_not_an_error():
    flow = loads("name: f\nsteps:\n  - name: a\n    run: |\n      printf 'a\tb'\n",
                 filename="f.yaml")
    assert flow.steps[0].run == "printf 'a\tb'\n"
