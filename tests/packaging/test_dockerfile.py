"""The image (docker is not available here, so the Dockerfile is read): its build stage makes the
wheel from the product's folders only, its final stage installs the wheel and carries no source:
no simulator/, tests/, bench/ or scripts/, and it runs plain ``gunicorn`` with gunicorn.conf.py,
which names the app."""

from __future__ import annotations

import ast
import json
import shlex

from tests.conftest import ROOT

NEVER = ("simulator", "tests", "bench", "scripts")


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (instruction, arguments); continuations joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            found.append([])
        found[-1].append((instruction.upper(), rest.strip()))
    return found


def copied(stage: list[tuple[str, str]]) -> list[str]:
    """The sources of every COPY/ADD of ``stage`` (without options such as --from=)."""
    sources: list[str] = []
    for instruction, rest in stage:
        if instruction in ("COPY", "ADD"):
            words = shlex.split(rest)
            sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def test_no_stage_copies_the_simulator_tests_or_tools() -> None:
    for stage in stages():
        for source in copied(stage):
            name = source.strip("./").split("/")[0]
            assert name not in NEVER, f"the Dockerfile copies {source}"
            assert source not in (".", "./", "*", "*.py"), f"the Dockerfile copies {source}"


def test_the_image_installs_the_wheel_and_runs_plain_gunicorn() -> None:
    build, final = stages()
    assert ("RUN", "pip wheel --no-deps --wheel-dir /wheels .") in build
    assert sorted(copied(build)) == sorted(
        ["pyproject.toml", "access_desk", "handlers", "resolvers", "static"]
    )
    assert sorted(copied(final)) == ["/wheels", "gunicorn.conf.py", "requirements/run.lock"]
    assert ("COPY", "--from=build /wheels /tmp/wheels") in final  # the wheel, from the build
    [install] = [rest for instruction, rest in final if instruction == "RUN"]
    assert "pip install -r /tmp/run.lock" in install
    assert "pip install --no-deps /tmp/wheels/*.whl" in install
    [command] = [rest for instruction, rest in final if instruction == "CMD"]
    assert json.loads(command) == ["gunicorn"]


def test_gunicorn_conf_names_the_app() -> None:
    tree = ast.parse((ROOT / "gunicorn.conf.py").read_text())
    assigned = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert ast.literal_eval(assigned["wsgi_app"]) == "access_desk.app:create_app()"
