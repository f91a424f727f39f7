"""What counts as one entry of a pasted list: the rules the panel (``static/entries.js``, a line for
line mirror) and the backend (``resolvers.inputs.entry_list``: resolver and webhook input) share.

Both are checked against one table of cases, ``tests/entry_cases.json``, so they cannot drift.

1. **Lines.** Text is split into lines (``\\r\\n``, ``\\r``, ``\\n``, U+0085, U+2028, U+2029).
2. **A header row.** When the first non-blank line, read as CSV cells (separated by ``,`` ``;`` or a
   tab, double quotes keep a separator inside a cell), has a cell that names the column (emails:
   ``email``, ``e-mail``, ``emails``, ``email address``...; account ids: ``accountId``,
   ``account id``, ``Atlassian account ID``...; ASCII letters in any case), it is a header: with one
   cell the line is dropped, with several the text is a table and only that column of every later
   line is read (the CSV loader's rule).
3. **Separators.** Otherwise each line is split on ``,`` and ``;`` outside double quotes, never on
   spaces or tabs.
4. **One entry.** Each piece is trimmed (spaces, tabs, no-break and zero-width spaces, a BOM), and
   quotes around it are dropped. For emails, ``Name <addr>`` and ``"Name" <addr>`` give ``addr``,
   and ``mailto:addr`` (with any ``?subject=…`` after it) gives ``addr``. Blank pieces are dropped.
5. **Invalid, whole.** An entry with a space (or another blank or invisible character) inside is
   invalid as a whole (``spaces``), never cut into fragments; an email needs exactly one ``@`` with
   text on both sides (``not_email``); an account id has the form of one (``not_account_id``:
   ``account_ids.is_account_id``); longer than 320 characters (an account id: 128) is
   ``too_long``. An invalid entry
   is reported as it was written (the piece, trimmed), with its line number.
6. **Once.** Duplicates are dropped, keeping the first: emails compared with ``A``-``Z`` folded to
   ``a``-``z`` only (``ß`` is not ``ss``), account ids exactly; invalid entries likewise.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Literal

from access_desk.account_ids import ACCOUNT_ID_MAX, is_account_id

Kind = Literal["email", "accountId"]

MAX_LENGTH = 320  # longer than any email address (254)
# The longest entry of each kind: an email, or an account id (Atlassian's 128, ``account_ids``).
LIMITS: dict[Kind, int] = {"email": MAX_LENGTH, "accountId": ACCOUNT_ID_MAX}

# Blank and invisible characters, spelled out so that Python and JavaScript agree on every one
# (their own \s and trim() differ): tab, LF, VT, FF, CR, space, NEL, no-break space, Ogham space,
# the U+2000 spaces, zero-width space and joiners, line and paragraph separators, narrow no-break
# space, medium mathematical space, word joiner, ideographic space, BOM.
BLANKS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
_BLANK = re.compile(f"[{BLANKS}]")
_TRIM = re.compile(f"^[{BLANKS}]+|[{BLANKS}]+$")
_LINES = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_QUOTES = re.compile("^[\"']+|[\"']+$")
_ANGLE = re.compile(r"^[^<>]*<([^<>]*)>$", re.S)
_MAILTO = re.compile(r"^mailto:", re.I | re.A)
_EMAIL = re.compile(r"^[^@]+@[^@]+$")
_SEPARATORS = re.compile("[,;]")
HEADERS: dict[Kind, re.Pattern[str]] = {
    "email": re.compile(r"e-?mails?(?:[ _-]?address(?:es)?)?", re.I | re.A),
    "accountId": re.compile(r"(?:atlassian[ _-]?)?account[ _-]?ids?", re.I | re.A),
}
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass(frozen=True, slots=True)
class Invalid:
    """An entry the rules refuse: as written, why (``spaces``, ``not_email``, ``too_long``), and
    the line it is on (1-based)."""

    entry: str
    reason: str
    line: int


@dataclass(slots=True)
class Parsed:
    """``entries``: the distinct valid entries in first-seen order; ``invalid``: the distinct
    invalid ones; ``written``: both in one list, in first-seen order (valid ones as read, invalid
    ones as written); ``header``: the header cell that was recognised; ``repeated``: how many
    entries were dropped as repeats."""

    entries: list[str] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    header: str | None = None
    repeated: int = 0


def trim(text: str) -> str:
    return _TRIM.sub("", text)


def key(value: str, kind: Kind) -> str:
    """What makes two entries the same: emails equal with ``A``-``Z`` lower-cased, ids exactly."""
    return value.translate(_ASCII_LOWER) if kind == "email" else value


def normalise(piece: str, kind: Kind) -> tuple[str, str | None]:
    """``(value, reason)``: the entry a piece stands for, and why it is invalid (None when it is
    valid). A blank piece gives ``("", None)``."""
    if kind == "accountId" and is_account_id(piece):
        return piece, None  # the form has no blank, quote or separator: the entry as it stands
    value = trim(_QUOTES.sub("", trim(piece)))
    if not value:
        return "", None
    if kind == "email":
        written = value
        angle = _ANGLE.match(value)
        if angle:
            value = trim(angle.group(1))
        if _MAILTO.match(value):
            value = trim(value[len("mailto:") :].split("?", 1)[0])
        if not value:  # "Jane <>", "mailto:": no address at all
            return written, "not_email"
    return value, problem(value, kind)


def accepted(entry: str, kind: Kind) -> bool:
    """Whether the rules read ``entry``, as it stands, as exactly this valid entry: what the
    backend asks of an entry before it sends it anywhere (an invalid one is answered for locally)."""
    return normalise(entry, kind) == (entry, None)


def problem(value: str, kind: Kind) -> str | None:
    """Why ``value`` is not a valid entry as it stands, or None."""
    if _BLANK.search(value):
        return "spaces"
    if len(value) > LIMITS[kind]:
        return "too_long"
    if kind == "email" and not _EMAIL.match(value):
        return "not_email"
    if kind == "accountId" and not is_account_id(value):
        return "not_account_id"
    return None


def parse(text: str, kind: Kind) -> Parsed:
    """The entries of pasted text (the module's rules 1 to 6)."""
    lines = _LINES.split(text)
    first = next((i for i, line in enumerate(lines) if trim(line)), None)
    column: int | None = None
    found = Parsed()
    start = 0
    if first is not None:
        cells = csv_cells(lines[first])
        named = next((i for i, c in enumerate(cells) if HEADERS[kind].fullmatch(c)), None)
        if named is not None:
            found.header = cells[named]
            start = first + 1
            column = named if len(cells) > 1 else None
    seen: set[str] = set()
    for number in range(start, len(lines)):
        line = lines[number]
        if column is not None:
            cells = csv_cells(line)
            pieces = [cells[column]] if column < len(cells) else []
        else:
            pieces = split_line(line)
        for piece in pieces:
            value, reason = normalise(piece, kind)
            if not value:
                continue
            shown = value if reason is None else trim(piece)
            k = ("" if reason is None else "\x00") + key(shown, kind)
            if k in seen:
                found.repeated += 1
                continue
            seen.add(k)
            found.written.append(shown)
            if reason is None:
                found.entries.append(value)
            else:
                found.invalid.append(Invalid(shown, reason, number + 1))
    return found


def split_line(line: str) -> list[str]:
    """``line`` cut at ``,`` and ``;`` outside double quotes (the quotes are kept)."""
    if '"' not in line:
        return _SEPARATORS.split(line)
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for c in line:
        if c == '"':
            quoted = not quoted
        if c in ",;" and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(c)
    pieces.append("".join(current))
    return pieces


def csv_cells(line: str) -> list[str]:
    """``line`` as CSV cells: cut at ``,`` ``;`` or a tab outside double quotes, each trimmed,
    its quotes taken off (``""`` inside quotes is one ``"``)."""
    cells: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if quoted:
            if c == '"' and line[i + 1 : i + 2] == '"':
                current.append('"')
                i += 1
            elif c == '"':
                quoted = False
            else:
                current.append(c)
        elif c == '"':
            quoted = True
        elif c in ",;\t":
            cells.append(trim("".join(current)))
            current = []
        else:
            current.append(c)
        i += 1
    cells.append(trim("".join(current)))
    return cells
