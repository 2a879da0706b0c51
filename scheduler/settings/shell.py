"""String commands that hold shell syntax: a warning for each, naming its key.

A command given as a string is split into arguments like a shell would split it
(``shlex``), but no shell runs it: in ``"mysqldump app > /dump/db.sql"`` the ``>`` and the
file reach mysqldump as two more arguments. Such a string is a warning (``validate``
prints it, the daemon logs ``config.warning``), not an error: what looks like shell syntax
can be a program's own argument, and a config that runs today must keep loading. Flagged,
outside quotes: a pipe, ``&&``, ``||``, ``;``, ``&`` and redirections as words of their own
(or a redirection's start: ``>file``, ``2>&1``); anywhere but inside single quotes: ``$(``,
backquotes and ``$NAME``/``${NAME}``. Not flagged: globs (``*``, ``?``, ``[…]``), ``~``,
braces, ``|`` or ``;`` inside a word (a regular expression, ``find … {} ;``), and a string
that already runs a shell (``sh -c '…'``).
"""

from __future__ import annotations

import json
import re
import shlex
import types
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel

from jobs.run import Command, Entrypoint
from scheduler.settings.messages import shown_value

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pydantic.fields import FieldInfo

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "busybox"})
_OPERATORS = {
    "|": "'|' (a pipe)",
    "||": "'||' (or else)",
    "&&": "'&&' (and then)",
    ";": "';' (a list)",
    "&": "'&' (in the background)",
}
_SYNTAX_CHARS = frozenset("|&;<>$`")
"""Every flagged piece of syntax holds one of these: a command without any is not split."""
_REDIRECT = re.compile(r"(\d*|&)(>>?|<<?)")
_VARIABLE = re.compile(r"\$(\{|[A-Za-z_])")
_CHECKS = frozenset(
    check.func
    for mark in (Command, Entrypoint)
    for check in get_args(mark)[1:]
    if isinstance(check, AfterValidator)
)
"""The checks that make a field a command (a string split into arguments)."""


@dataclass(frozen=True, slots=True)
class KeyWarning:
    """A warning about one key of a job: ``key`` is its path below the job
    (``command``, ``pre_exec[0].command``)."""

    key: str
    message: str
    """What is wrong, without the command's text: the daemon logs it (``config.warning``)."""
    fix: str = ""
    """The key rewritten with the user's own text, ``command = ["sh", "-c", "…"]``, for
    ``validate`` only (a person at a terminal; "" when the text may hold a secret)."""


def _words(text: str) -> Iterator[tuple[str, str]]:
    """Each word of ``text`` as a shell would split it, twice: the characters outside any
    quote (others replaced by a space), and those outside single quotes."""
    bare, loose, quote, escaped = "", "", "", False
    for char in text:
        if escaped:
            bare, loose, escaped = bare + " ", loose + " ", False
        elif quote == "'":
            quote = "" if char == "'" else quote
            bare, loose = bare + " ", loose + " "
        elif char == "\\":
            escaped = True
        elif quote == '"':
            quote = "" if char == '"' else quote
            bare, loose = bare + " ", loose + char
        elif char in "'\"":
            quote = char
        elif char.isspace():
            if bare or loose:
                yield bare, loose
            bare, loose = "", ""
        else:
            bare, loose = bare + char, loose + char
    if bare or loose:
        yield bare, loose


def shell_syntax(text: str) -> str | None:
    """The first piece of shell syntax in the string command ``text`` that no shell will
    read, described (``"'>' (a redirection)"``); None when there is none."""
    if _SYNTAX_CHARS.isdisjoint(text):
        return None
    try:
        argv = shlex.split(text)
    except ValueError:
        return None  # unbalanced quotes: the command's own error says so
    runs_shell = argv[0].rsplit("/", 1)[-1] in SHELLS if argv else False
    if runs_shell and any(a.startswith("-") and "c" in a for a in argv[1:3]):
        return None  # a shell already reads the rest
    words = list(_words(text))
    for index, (bare, loose) in enumerate(words):
        after_braces = index > 0 and words[index - 1][0] == "{}"  # find … {} ;
        found = _operator(bare.strip(), after_braces=after_braces) or _expansion(loose)
        if found is not None:
            return found
    return None


def _operator(word: str, *, after_braces: bool) -> str | None:
    """A control operator or a redirection that ``word`` (its unquoted part) is."""
    if word in _OPERATORS and not (word == ";" and after_braces):
        return _OPERATORS[word]
    if "&&" in word or "||" in word:
        return _OPERATORS["&&" if "&&" in word else "||"]
    redirect = _REDIRECT.match(word)
    if redirect is not None:
        return f"{redirect.group()!r} (a redirection)"
    return _OPERATORS[";"] if word.endswith(";") and len(word) > 1 else None


def _expansion(loose: str) -> str | None:
    """A command substitution or a variable in ``loose`` (a word outside single quotes)."""
    if "$(" in loose:
        return "'$(…)' (a command substitution)"
    if "`" in loose:
        return "'`…`' (a command substitution)"
    variable = _VARIABLE.search(loose)
    if variable is None:
        return None
    name = re.match(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", loose[variable.start() :])
    return f"'{name.group() if name else '$'}' (a variable)"


def _is_command(info: FieldInfo) -> bool:
    """The field takes a command (``Command``/``Entrypoint``, optional or not)."""
    found = [info.annotation, *info.metadata]
    while found:
        item = found.pop()
        if isinstance(item, AfterValidator) and item.func in _CHECKS:
            return True
        if get_origin(item) is Annotated:
            found.extend([get_args(item)[0], *item.__metadata__])
        elif get_origin(item) in (Union, types.UnionType):
            found.extend(get_args(item))
    return False


def _may_hold_a_model(annotation: object) -> bool:
    """A field of this type may hold a model (or a list of them): anything naming a model
    class, or a type that says nothing (``Any``, an unresolved name)."""
    found = [annotation]
    while found:
        item = found.pop()
        if isinstance(item, type):
            if issubclass(item, BaseModel):
                return True
            continue
        if get_origin(item) is Annotated:  # the type, not its checks
            found.append(get_args(item)[0])
            continue
        args = get_args(item)
        if not args and get_origin(item) is None and item is not None:
            return True  # Any, a TypeVar, a string: not known to hold no model
        found.extend(arg for arg in args if not isinstance(arg, (str, int, float, bool)))
    return False


@cache
def _read_fields(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """The fields of ``model`` that ``command_warnings`` reads, each with whether it takes a
    command; the others (numbers, plain strings, lists of strings) hold nothing to warn
    about. Once per model class: its annotations do not change."""
    return tuple(
        (name, command)
        for name, info in model.model_fields.items()
        if (command := _is_command(info)) or _may_hold_a_model(info.annotation)
    )


def command_warnings(model: BaseModel, key: str = "") -> list[KeyWarning]:
    """A warning for each string command in ``model`` (a job; its tables and lists of
    tables too) that holds shell syntax."""
    warnings: list[KeyWarning] = []
    for name, command in _read_fields(type(model)):
        value, where = getattr(model, name), f"{key}.{name}" if key else name
        if isinstance(value, str):
            if command:
                found = shell_syntax(value)
                if found is not None:
                    warnings.append(_warning(where, name, value, found))
        elif isinstance(value, BaseModel):
            warnings.extend(command_warnings(value, where))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    warnings.extend(command_warnings(item, f"{where}[{index}]"))
    return warnings


_SECRET_LOOKING = re.compile(
    r"(?i)(?:^|\s)-p\S|--pass|passw|secret|token|api[_-]?key|authorization|bearer"
)
"""Text of a command that may carry a secret as an argument (``mysqldump -pS3cret``,
``--password=…``, ``TOKEN=…``): not repeated even by ``validate``."""
_PROGRAM = re.compile(r"[\w./+-]+")
"""A program's name, as the warning may name it (not ``TOKEN=x``, not a quoted oddity)."""


def _warning(where: str, name: str, text: str, found: str) -> KeyWarning:
    """The warning of ``text`` (the value of key ``name``, at ``where``): its message names
    the syntax and the program, never the rest of the command (the daemon logs it, and a
    command may carry a password as an argument); ``validate`` adds the rewritten key."""
    first = shlex.split(text)[0]
    program = first if _PROGRAM.fullmatch(first) else "the program"
    message = (
        f"{found} is shell syntax, but a string command is split into arguments without a "
        f"shell: it reaches {program} as an argument. To run it in a shell, write it as a "
        f'list: {name} = ["sh", "-c", "<the command>"]'
    )
    shown = shown_value((name,), text) is not None and not _SECRET_LOOKING.search(text)
    fix = f'{name} = ["sh", "-c", {json.dumps(text, ensure_ascii=False)}]' if shown else ""
    return KeyWarning(where, message, fix)
