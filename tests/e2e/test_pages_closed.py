"""The browser tests open their pages through the ``new_context`` fixture (tests/e2e/conftest.py),
which closes each context with its pages when the test ends, failed or not: no test opens a context
on the browser itself or closes a page or context by hand."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hand_written(root: Path) -> list[str]:
    """``file:line: code`` of each ``browser.new_context(...)`` and each ``close()`` of a page or
    a context in the browser tests under ``root`` (their conftest.py, where the fixture lives,
    aside)."""
    found = []
    for path in sorted((root / "tests" / "e2e").glob("*.py")):
        if path.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = ast.unparse(node.func.value)
            opens = node.func.attr == "new_context" and owner == "browser"
            closes = node.func.attr == "close" and owner.split(".")[-1] in ("page", "context")
            if opens or closes:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_browser_test_opens_or_closes_a_page_by_hand() -> None:
    assert (ROOT / "tests" / "e2e" / "test_panel.py").is_file()
    assert hand_written(ROOT) == []


def test_the_check_sees_each_hand_written_close(tmp_path: Path) -> None:
    (tmp_path / "tests" / "e2e").mkdir(parents=True)
    (tmp_path / "tests" / "e2e" / "test_x.py").write_text(
        "def test_x(browser):\n"
        "    context = browser.new_context()\n"
        "    page = context.new_page()\n"
        "    page.close()\n"
        "    page.context.close()\n"
        "    context.close()\n"
        "    store.close()\n"
    )
    (tmp_path / "tests" / "e2e" / "conftest.py").write_text("browser.new_context().close()\n")
    assert hand_written(tmp_path) == [
        "tests/e2e/test_x.py:2: browser.new_context()",
        "tests/e2e/test_x.py:4: page.close()",
        "tests/e2e/test_x.py:5: page.context.close()",
        "tests/e2e/test_x.py:6: context.close()",
    ]
