"""The wheel's sources parse as Python 3.9 (pyproject's requires-python floor; only 3.11 runs here).

``ast.parse(..., feature_version=(3, 9))`` rejects the syntax newer releases added (``match``, parenthesised context
managers, ``except*``, PEP 695 generics). Annotations are strings under ``from __future__ import annotations``, so
``X | None`` in them is fine on 3.9 unless something evaluates them: every module that writes ``X | Y`` in an
annotation must have that import.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*REPO.glob("scsa_yolo/**/*.py"), *REPO.glob("scsa_yolo_*.py")])  # what the wheel ships
FLOOR = (3, 9)


def test_requires_python_is_the_floor_checked_here():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'requires-python = ">={FLOOR[0]}.{FLOOR[1]}"' in pyproject


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_source_parses_as_the_floor_version(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=FLOOR)
    union_annotations = [
        node.lineno
        for node in ast.walk(tree)
        for annotation in (getattr(node, "annotation", None), getattr(node, "returns", None))
        if annotation is not None and any(isinstance(n, ast.BinOp) for n in ast.walk(annotation))
    ]
    future = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )
    assert future or not union_annotations, (
        f"X | Y annotations without 'from __future__ import annotations' at {union_annotations}"
    )
