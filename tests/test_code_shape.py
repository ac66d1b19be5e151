"""The code stays readable in one sitting: no function of the product longer than a screenful or two."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "teacher_extract", "student_train")
#: Lines of a function from its ``def`` to its last line, docstring included (a command's option
#: decorators are declarations, not logic, and are not counted).
LIMIT = 80


def test_no_function_is_longer_than_the_limit() -> None:
    long = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > LIMIT:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines})")
    assert not long, f"functions over {LIMIT} lines: {long}"
