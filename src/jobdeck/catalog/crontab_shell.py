"""Reading a crontab command as ``/bin/sh`` would, far enough to convert it.

Two questions are answered here: can the command run as an argv without a shell
(:func:`simple_argv`), and what to call its schedule (:func:`schedule_name`). The lexer
is deliberately small: whenever it is unsure, the answer is "keep the shell".
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

_REDIRECT_RE = re.compile(r"\d*(?:>>|>&|>\||>|<<<|<<-|<<|<&|<>|<)|&>>|&>")
_OPERATORS = ("&&", "||", ";;", ";", "|&", "|", "&", "(", ")")
_ASSIGNMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_NAME_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_:.-]*")

# Words of the shell's grammar that can start a command.
_KEYWORDS = frozenset(
    {"!", "{", "}", "[[", "]]", "if", "then", "else", "elif", "fi", "for", "while", "until"}
    | {"do", "done", "case", "esac", "function", "select", "time"}
)
# First words that only a shell understands: keywords, and builtins with no binary.
_SHELL_ONLY = _KEYWORDS | frozenset(
    {"cd", ".", "source", "export", "unset", "set", "eval", "exec", "ulimit", "umask"}
    | {"alias", "trap", "shift", "return", "exit", "wait", "read", "readonly", "local"}
    | {"declare", "typeset", "builtin", "command"}
)
_LOOP_HEADS = frozenset({"for", "case", "select", "function"})
# Commands that set the stage rather than do the job, passed over when naming.
_SETUP = frozenset(
    {"cd", "test", "[", "[[", "true", "false", ":", "sleep", "echo", "printf", "date"}
    | {"export", "source", ".", "set", "umask", "ulimit", "mkdir", "touch"}
)
# Wrappers: (options that take a value, positional arguments before the command).
WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "ionice": (frozenset({"-c", "-n", "-p", "--class", "--classdata"}), 0),
    "nohup": (frozenset(), 0),
    "setsid": (frozenset(), 0),
    "chronic": (frozenset(), 0),
    "cronic": (frozenset(), 0),
    "time": (frozenset(), 0),
    "exec": (frozenset({"-a"}), 0),
    "env": (frozenset({"-u", "-C", "--unset", "--chdir"}), 0),
    "sudo": (frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-U", "--user", "--group"}), 0),
    "timeout": (frozenset({"-k", "-s", "--kill-after", "--signal"}), 1),
    "flock": (frozenset({"-w", "-E", "--timeout", "--wait", "--conflict-exit-code"}), 1),
    "xvfb-run": (frozenset({"-a", "-n", "-s", "--server-args"}), 0),
    "bundle": (frozenset(), 0),  # bundle exec ...
}
_INTERPRETERS = re.compile(
    r"(php|python|ruby|perl|node|nodejs|bash|sh|dash|zsh|ksh|java|bun|deno|Rscript)"
    r"[0-9.]*(-cli)?"
)
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
_SCRIPT_SUFFIXES = (".sh", ".bash", ".py", ".php", ".rb", ".pl", ".js", ".jar", ".phar")
_MAX_NAME = 40


@dataclass(frozen=True)
class Token:
    """A word (``op`` empty) or an operator/redirection (``op`` is its text)."""

    value: str  # the word as the shell passes it on, quotes removed
    start: int
    end: int
    op: str = ""
    needs_shell: bool = False  # expansion, glob, tilde or comment in this word


def tokens(text: str) -> list[Token]:
    """Split a command into words and operators, with their offsets in ``text``."""
    found: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in " \t":
            index += 1
            continue
        redirect = _REDIRECT_RE.match(text, index)
        if redirect is not None:
            found.append(Token(redirect.group(), index, redirect.end(), op=redirect.group()))
            index = redirect.end()
            continue
        operator = next((op for op in _OPERATORS if text.startswith(op, index)), None)
        if operator is not None:
            found.append(Token(operator, index, index + len(operator), op=operator))
            index += len(operator)
            continue
        word = _word(text, index)
        found.append(word)
        index = word.end
        if text[word.start] == "#":
            break  # the rest of the line is a shell comment
    return found


def _word(text: str, start: int) -> Token:
    value: list[str] = []
    needs_shell = text[start] in "~#"  # tilde expansion, or a comment to the end
    index = start
    while index < len(text):
        char = text[index]
        if char in " \t;&|()<>":
            break  # ``a>b`` is the word ``a`` and a redirection, as in sh
        if char == "'":
            close = text.find("'", index + 1)
            close = len(text) if close < 0 else close
            value.append(text[index + 1 : close])
            index = close + 1
        elif char == '"':
            index += 1
            while index < len(text) and text[index] != '"':
                if text[index] in "$`":
                    needs_shell = True
                if text[index] == "\\" and text[index + 1 : index + 2] in ("$", "`", '"', "\\"):
                    index += 1
                value.append(text[index])
                index += 1
            index += 1
        elif char == "\\":
            value.append(text[index + 1 : index + 2] or "\\")
            index += 2
        else:
            needs_shell = needs_shell or char in "$`*?[]{}"
            value.append(char)
            index += 1
    return Token("".join(value), start, min(index, len(text)), needs_shell=needs_shell)


def balanced(text: str) -> bool:
    """Whether quotes and ``$( )`` in ``text`` are closed: a cut-off command is not."""
    try:
        shlex.split(text)
    except ValueError:
        return False
    return text.count("(") <= text.count(")") and text.count("`") % 2 == 0


def simple_argv(text: str) -> list[str] | None:
    """The argv that ``sh -c text`` would run, when no shell feature is involved."""
    words = tokens(text)
    if not words or any(word.op or word.needs_shell for word in words):
        return None
    first = words[0].value
    if first in _SHELL_ONLY or _ASSIGNMENT_RE.match(first) or not first:
        return None
    return [word.value for word in words]


def option_wants_value(option: str, takes_value: frozenset[str]) -> bool:
    if option.startswith("--"):
        return "=" not in option and option in takes_value
    # A cluster such as ``-xw`` ends with the option that takes the next word.
    return len(option) >= 2 and f"-{option[-1]}" in takes_value


def schedule_name(text: str) -> str:
    """A schedule name made from what the command does, e.g. ``artisan-ranking-aggregate``.

    The first command that is not set-up (``cd``, ``test``, ``sleep`` ...) names the job:
    its program or script, without directories and suffixes, and up to two following
    sub-command words (``rake reports:daily``, ``artisan queue:restart``).
    """
    candidates = [words for words in _simple_commands(text) if words]
    chosen = next((words for words in candidates if _program(words)[0] not in _SETUP), None)
    if chosen is None and candidates:
        chosen = candidates[0]
    if chosen is None:
        return "job"
    program, args = _program(chosen)
    if program in _SHELLS and len(args) > 1 and args[0] == "-c" and len(args[1]) < len(text):
        return schedule_name(args[1])
    if program == "run-parts":
        directories = [arg for arg in args if not arg.startswith("-")]
        if directories:
            return slug([PurePosixPath(directories[-1]).name]) or "run-parts"
    words = [program]
    for arg in args[:2]:
        if not _NAME_WORD_RE.fullmatch(arg):
            break
        words.append(arg)
    if len(words) == 1 and program in chosen:
        # A tool found on PATH (find, rsync, tar ...) says little by itself: what it
        # works on does (``find /var/tmp ...`` -> find-var-tmp).
        words += _path_words(args)
    return slug(words) or "job"


def _path_words(args: list[str]) -> list[str]:
    """The last two plain components of the first path among ``args``."""
    for arg in args:
        if arg.startswith(("/", "~/", "./", "../")):
            parts = [
                part
                for part in PurePosixPath(arg).parts
                if part not in ("/", "~", ".", "..") and not any(c in part for c in "*?[{$`(")
            ]
            if parts:
                return parts[-2:]
    return []


def _simple_commands(text: str) -> list[list[str]]:
    """The words of each simple command, without redirections and leading assignments."""
    commands: list[list[str]] = [[]]
    skip_next = skip_rest = False
    for token in tokens(text):
        if token.op and not _REDIRECT_RE.fullmatch(token.op):
            commands.append([])
            skip_rest = False
        elif token.op:
            skip_next = True  # the redirection's target: a file, a descriptor, a delimiter
        elif skip_next:
            skip_next = False
        elif not skip_rest:
            current = commands[-1]
            if not current and token.value in _LOOP_HEADS:
                skip_rest = True  # ``for f in *.log`` names no command
            elif current or not (_ASSIGNMENT_RE.match(token.value) or token.value in _KEYWORDS):
                current.append(token.value)
    return commands


def _program(words: list[str]) -> tuple[str, list[str]]:
    """(the program or script that does the work, its arguments) after wrappers."""
    index = 0
    while index < len(words):
        name = PurePosixPath(words[index]).name
        if name in WRAPPERS:
            takes_value, positional = WRAPPERS[name]
            index += 1
            if name == "bundle" and index < len(words) and words[index] == "exec":
                index += 1
            while index < len(words) and (
                words[index].startswith("-") or _ASSIGNMENT_RE.match(words[index])
            ):
                index += 2 if option_wants_value(words[index], takes_value) else 1
            index += positional
            if index + 1 < len(words) and words[index] in ("-c", "--command"):
                return "sh", ["-c", words[index + 1]]  # flock's command-string form
            continue
        if _INTERPRETERS.fullmatch(name):
            return _script(name, words[index + 1 :])
        return _strip_suffix(name), words[index + 1 :]
    return "", []


def _script(interpreter: str, args: list[str]) -> tuple[str, list[str]]:
    """The script an interpreter runs: ``php artisan x`` -> (artisan, [x])."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        if args[index] in ("-m", "-jar") and index + 1 < len(args):
            target = args[index + 1]
            if args[index] == "-m":
                return target.replace(".", "-").replace("_", "-"), args[index + 2 :]
            return _strip_suffix(PurePosixPath(target).name), args[index + 2 :]
        if args[index] in ("-c", "-e", "-r"):
            return interpreter, args[index:]  # inline code
        index += 1
    if index < len(args):
        return _strip_suffix(PurePosixPath(args[index]).name), args[index + 1 :]
    return interpreter, []


def _strip_suffix(name: str) -> str:
    for suffix in _SCRIPT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def slug(words: list[str]) -> str:
    """Words -> a catalog name: lowercase, ``[a-z0-9-]``, starting with a letter."""
    text = "-".join(re.sub(r"[^a-z0-9]+", "-", word.lower()).strip("-") for word in words)
    text = re.sub(r"-+", "-", text).strip("-")
    text = re.sub(r"^[^a-z]+", "", text)
    if len(text) > _MAX_NAME:
        text = text[:_MAX_NAME].rsplit("-", 1)[0] if "-" in text[:_MAX_NAME] else text[:_MAX_NAME]
    return text.strip("-")
