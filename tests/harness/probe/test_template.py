"""The student template mirrors the reference: same modules, names and signatures; stubs say their task."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from grader.points import task_spec
from grader.probe.implementation import TASK_MODULES

ROOT = Path(__file__).resolve().parents[3]


def public_functions(package: str, module: str) -> dict[str, inspect.Signature]:
    mod = importlib.import_module(f"{package}.{module}")
    return {
        name: inspect.signature(obj)
        for name, obj in vars(mod).items()
        if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == mod.__name__
    }


@pytest.mark.parametrize("module", TASK_MODULES)
def test_template_module_has_the_reference_signatures(module: str) -> None:
    template = public_functions("student_template", module)
    reference = public_functions("reference", module)
    missing = set(template) - set(reference)
    assert not missing, f"reference/{module}.py lacks {sorted(missing)}"
    for name, signature in template.items():
        assert str(signature) == str(reference[name]), f"{module}.{name} differs"


@pytest.mark.parametrize("module", TASK_MODULES)
def test_every_stub_names_its_task(module: str) -> None:
    number = task_spec(module).number
    tree = ast.parse((ROOT / "student_template" / f"{module}.py").read_text())
    messages = [
        node.exc.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
        and getattr(node.exc.func, "id", "") == "NotImplementedError"
    ]
    assert messages, f"student_template/{module}.py has no TODO stub"
    assert all(m.startswith(f"Task {number}: ") for m in messages), messages


@pytest.mark.parametrize("module", TASK_MODULES)
def test_given_helpers_are_identical(module: str) -> None:
    """Helpers the handout gives (not stubs) must be the same code in both packages."""
    def helpers(package: str) -> dict[str, str]:
        tree = ast.parse((ROOT / package / f"{module}.py").read_text())
        return {
            node.name: ast.dump(node)
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and "NotImplementedError" not in ast.dump(node)
        }

    template, reference = helpers("student_template"), helpers("reference")
    for name, body in template.items():
        assert reference.get(name) == body, f"{module}.{name} differs between template and reference"


def headings(path: Path) -> list[str]:
    return re.findall(r"^## (.+)$", path.read_text(), flags=re.MULTILINE)


def test_answers_have_the_same_questions() -> None:
    template = headings(ROOT / "student_template" / "answers.md")
    assert len(template) == 4
    assert template == headings(ROOT / "reference" / "answers.md")


def test_template_answers_are_empty() -> None:
    text = (ROOT / "student_template" / "answers.md").read_text()
    body = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert body == []
