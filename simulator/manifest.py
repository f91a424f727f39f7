"""What the simulated platform reads from the deployed manifest: which scopes allow offline user
impersonation (docs/platform.md, "Offline user token": "specify ``allowImpersonation: true`` on
scopes"). Without it the gateway and Confluence refuse offline tokens (``simulator.gateway``,
``simulator.confluence``), as a real site would.

``impersonation_scopes(path)`` reads ``permissions.scopes`` of a ``manifest.yml``: the list form
(no scope allows impersonation) or the map form (those whose options say ``allowImpersonation:
true``). It understands the plain block YAML Forge manifests use (indented mappings and ``-``
lists, ``#`` comments, ``{}``), not anchors or flow collections beyond ``{}``;
``tests/forge/test_manifest.py`` checks it against ``@forge/manifest``'s own parse.
"""

from __future__ import annotations

from pathlib import Path

DEPLOYED = Path(__file__).resolve().parent.parent / "manifest.yml"


def impersonation_scopes(path: Path = DEPLOYED) -> frozenset[str]:
    """The scopes whose ``allowImpersonation`` is ``true`` in the manifest at ``path``."""
    lines = [_strip(line) for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line.strip()]
    block = _block(lines, ["permissions", "scopes"])
    flagged: set[str] = set()
    scope: str | None = None
    scope_indent = None
    for line in block:
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if text.startswith("- "):  # the list form: nothing allows impersonation
            continue
        key, value = _pair(text)
        if scope_indent is None or indent <= scope_indent:
            scope, scope_indent = key, indent
        elif scope is not None and key == "allowImpersonation" and value.lower() == "true":
            flagged.add(scope)
    return frozenset(flagged)


def _block(lines: list[str], keys: list[str]) -> list[str]:
    """The lines nested under the mapping path ``keys`` (empty when it is not there)."""
    start, indent = 0, -1
    for key in keys:
        for index in range(start, len(lines)):
            line = lines[index]
            here = len(line) - len(line.lstrip())
            if here <= indent:
                return []
            if here > indent and _pair(line.strip())[0] == key:
                start, indent = index + 1, here
                break
        else:
            return []
    block = []
    for line in lines[start:]:
        if len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
    return block


def _pair(text: str) -> tuple[str, str]:
    """``key: value`` (keys such as ``read:user:confluence`` hold colons, but never ``": "``)."""
    if text.endswith(":"):
        key, value = text[:-1], ""
    else:
        key, _, value = text.partition(": ")
    return key.strip().strip("'\""), value.strip()


def _strip(line: str) -> str:
    """The line without a ``#`` comment (one outside quotes) and trailing blanks."""
    quote = None
    for index, char in enumerate(line):
        if char in "'\"":
            quote = None if quote == char else (quote or char)
        elif char == "#" and quote is None and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()
