"""A small argparse: the part of its API the client's flags use, without its
imports (re, enum, collections, gettext, shutil: ~9 ms of a ~40 ms `corral run`
on the project's VM, more than the daemon's work for it).

It parses as argparse does where the client relies on it (tests/unit/
test_cmdline.py runs the client's whole command table through both), and as
Docker's CLI does where the two differ: long flags are matched whole, not by
abbreviation; options may come after positionals, until a REMAINDER positional
begins (`run IMAGE CMD...` and `exec CONTAINER CMD...` pass CMD's flags through).
Errors print `PROG: error: ...` and where help is (`See 'PROG --help'.`), as
Docker does, and exit 2, as argparse does.
"""

from __future__ import annotations

import os
import sys

REMAINDER = "..."


class ArgumentTypeError(Exception):
    """Raised by a `type` function: its message is the error shown."""


class Namespace:
    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"Namespace({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class _Arg:
    __slots__ = (
        "action",
        "choices",
        "default",
        "dest",
        "help",
        "metavar",
        "names",
        "nargs",
        "required",
        "type",
    )

    def __init__(self, names: tuple[str, ...], **kw: object) -> None:
        self.names = names
        for k in self.__slots__:
            if k != "names":
                setattr(self, k, kw.get(k))

    @property
    def option(self) -> bool:
        return self.names[0].startswith("-")

    @property
    def takes_value(self) -> bool:
        return self.action in ("store", "append")

    def shown(self) -> str:
        """How errors name it: -m/--memory, or a positional's name."""
        return "/".join(self.names) if self.option else (self.metavar or self.dest)

    def value_name(self) -> str:
        if self.metavar:
            return self.metavar
        if self.choices:
            return "{" + ",".join(str(c) for c in self.choices) + "}"
        return self.dest.upper() if self.option else self.dest


class SubParsers:
    """What add_subparsers returns: a positional whose value picks a parser."""

    def __init__(
        self, parent: ArgumentParser, dest: str | None, required: bool, metavar: str | None
    ):
        self.parent, self.dest, self.required, self.metavar = parent, dest, required, metavar
        self.choices: dict[str, ArgumentParser] = {}
        self.helps: dict[str, str] = {}

    def add_parser(self, name: str, *, help: str | None = None, aliases=(), **kw) -> ArgumentParser:
        kw.setdefault("docker_help", self.parent.docker_help)
        if help and "description" not in kw:
            kw["description"] = help[:1].upper() + help[1:]
        p = ArgumentParser(prog=f"{self.parent.prog} {name}", **kw)
        for n in (name, *aliases):
            self.choices[n] = p
        self.helps[name] = help or ""
        return p

    def shown(self) -> str:
        return self.metavar or "{" + ",".join(self.choices) + "}"


def _is_negative_number(tok: str) -> bool:
    body = tok[1:]
    return bool(body) and body.replace(".", "", 1).isdigit()


def _looks_like_option(tok: str) -> bool:
    return tok.startswith("-") and tok != "-" and not _is_negative_number(tok)


class ArgumentParser:
    def __init__(
        self,
        prog: str | None = None,
        *,
        add_help: bool = True,
        description: str | None = None,
        usage: str | None = None,
        docker_help: bool = False,
        **_ignored: object,  # formatter_class and the like: nothing to format with
    ) -> None:
        self.prog = prog or os.path.basename(sys.argv[0])
        self.description = description
        # Docker's help: "Usage:  corral run [OPTIONS] IMAGE [COMMAND] [ARG...]",
        # the description, then "Options:" (`usage` replaces what follows the
        # command's name). argparse's layout otherwise.
        self.usage = usage
        self.docker_help = docker_help
        self._args: list[_Arg] = []
        self._options: dict[str, _Arg] = {}
        self._positionals: list[_Arg] = []
        self._sub: SubParsers | None = None
        if add_help:
            self.add_argument("-h", "--help", action="help", help="show this help message and exit")

    # -- building -----------------------------------------------------------------------

    _KWARGS = frozenset(
        ("action", "default", "type", "choices", "nargs", "metavar", "help", "dest", "required")
    )

    def add_argument(self, *names: str, **kw) -> None:
        unknown = set(kw) - self._KWARGS
        if unknown:  # not silently ignored: this is a subset of argparse
            raise TypeError(f"add_argument: {sorted(unknown)} not supported")
        action = kw.get("action", "store")
        if action not in ("store", "store_true", "append", "help"):
            raise ValueError(f"action {action!r} is not supported")
        dest = kw.get("dest")
        if dest is None:
            longs = [n for n in names if n.startswith("--")]
            dest = (longs or list(names))[0].lstrip("-").replace("-", "_")
        default = kw.get("default")
        if action == "store_true" and default is None:
            default = False
        arg = _Arg(
            names,
            action=action,
            dest=dest,
            default=default,
            type=kw.get("type"),
            choices=kw.get("choices"),
            nargs=kw.get("nargs"),
            metavar=kw.get("metavar"),
            help=kw.get("help"),
            required=bool(kw.get("required")),
        )
        self._args.append(arg)
        if arg.option:
            for n in names:
                self._options[n] = arg
        else:
            self._positionals.append(arg)

    def add_subparsers(
        self, *, dest: str | None = None, required: bool = False, metavar: str | None = None
    ) -> SubParsers:
        self._sub = SubParsers(self, dest, required, metavar)
        return self._sub

    # -- parsing ------------------------------------------------------------------------

    def parse_args(self, args: list[str] | None = None, namespace: Namespace | None = None):
        args = sys.argv[1:] if args is None else list(args)
        ns = namespace if namespace is not None else Namespace()
        for a in self._args:
            if a.action != "help" and not hasattr(ns, a.dest):
                setattr(ns, a.dest, list(a.default) if isinstance(a.default, list) else a.default)
        if self._sub is not None and self._sub.dest:
            setattr(ns, self._sub.dest, None)
        rem = next((i for i, a in enumerate(self._positionals) if a.nargs == REMAINDER), None)
        toks: list[str] = []
        unknown: list[str] = []
        i, only_positionals = 0, False
        while i < len(args):
            tok = args[i]
            # The command's own arguments begin: at its first word (run IMAGE...),
            # or right after the positionals before it (exec CONTAINER -l...).
            if (
                rem is not None
                and len(toks) == rem
                and (rem > 0 or only_positionals or not _looks_like_option(tok))
            ):
                return self._finish(ns, toks, unknown, args[i:])
            if only_positionals or not _looks_like_option(tok):
                if self._sub is not None and len(toks) == len(self._positionals):
                    return self._finish_sub(ns, toks, unknown, tok, args[i + 1 :])
                toks.append(tok)
                i += 1
                continue
            if tok == "--":
                only_positionals = True
                i += 1
                continue
            i = self._option(ns, args, i, unknown)
        return self._finish(ns, toks, unknown, None)

    def _option(self, ns: Namespace, args: list[str], i: int, unknown: list[str]) -> int:
        """Parse the option at args[i]; the index after what it took."""
        tok = args[i]
        if tok.startswith("--"):
            name, eq, value = tok.partition("=")
            arg = self._options.get(name)
            if arg is None:
                unknown.append(tok)
                return i + 1
            if not arg.takes_value:
                if eq:
                    self.error(f"argument {arg.shown()}: ignored explicit argument {value!r}")
                self._flag(ns, arg)
                return i + 1
            if eq:
                self._store(ns, arg, value)
                return i + 1
            return self._next_value(ns, arg, args, i)
        name, eq, value = tok.partition("=")
        if eq and name in self._options and self._options[name].takes_value:
            self._store(ns, self._options[name], value)
            return i + 1
        for pos in range(1, len(tok)):  # -it, -m64m, -e A
            arg = self._options.get("-" + tok[pos])
            if arg is None:
                unknown.append(tok if pos == 1 else "-" + tok[pos:])
                return i + 1
            if not arg.takes_value:
                self._flag(ns, arg)
                continue
            if pos + 1 < len(tok):
                self._store(ns, arg, tok[pos + 1 :])
                return i + 1
            return self._next_value(ns, arg, args, i)
        return i + 1

    def _next_value(self, ns: Namespace, arg: _Arg, args: list[str], i: int) -> int:
        if i + 1 >= len(args) or _looks_like_option(args[i + 1]):
            self.error(f"argument {arg.shown()}: expected one argument")
        self._store(ns, arg, args[i + 1])
        return i + 2

    def _flag(self, ns: Namespace, arg: _Arg) -> None:
        if arg.action == "help":
            self.print_help()
            sys.exit(0)
        setattr(ns, arg.dest, True)

    def _store(self, ns: Namespace, arg: _Arg, raw: str) -> None:
        value = self._convert(arg, raw)
        if arg.action == "append":
            getattr(ns, arg.dest).append(value)  # a fresh list: parse_args copied the default
        else:
            setattr(ns, arg.dest, value)

    def _convert(self, arg: _Arg, raw: str) -> object:
        value: object = raw
        if arg.type is not None:
            try:
                value = arg.type(raw)
            except ArgumentTypeError as e:
                self.error(f"argument {arg.shown()}: {e}")
            except (TypeError, ValueError):
                kind = getattr(arg.type, "__name__", repr(arg.type))
                self.error(f"argument {arg.shown()}: invalid {kind} value: {raw!r}")
        if arg.choices is not None and value not in arg.choices:
            allowed = ", ".join(repr(c) for c in arg.choices)
            self.error(f"argument {arg.shown()}: invalid choice: {raw!r} (choose from {allowed})")
        return value

    def _finish_sub(self, ns, toks, unknown, name: str, rest: list[str]):
        assert self._sub is not None
        parser = self._sub.choices.get(name)
        if parser is None:
            allowed = ", ".join(repr(c) for c in self._sub.choices)
            self.error(
                f"argument {self._sub.shown()}: invalid choice: {name!r} (choose from {allowed})"
            )
        self._finish(ns, toks, unknown, None, sub_chosen=True)
        if self._sub.dest:
            setattr(ns, self._sub.dest, name)
        return parser.parse_args(rest, ns)

    def _finish(self, ns, toks, unknown, remainder, *, sub_chosen: bool = False):
        specs = self._positionals
        mins = [0 if a.nargs in ("?", "*", REMAINDER) else 1 for a in specs]
        pos, missing = 0, []
        for j, a in enumerate(specs):
            if a.nargs == REMAINDER:
                setattr(ns, a.dest, remainder or [])
                continue
            room = len(toks) - pos - sum(mins[j + 1 :])
            n = max(room, 0)
            if a.nargs is None or a.nargs == "?":
                n = min(1, n)
            if n < mins[j]:
                missing.append(a.metavar or a.dest)
                continue
            values = [self._convert(a, t) for t in toks[pos : pos + n]]
            pos += n
            if a.nargs is None:
                setattr(ns, a.dest, values[0])
            elif a.nargs == "?":
                setattr(ns, a.dest, values[0] if values else a.default)
            else:
                setattr(ns, a.dest, values)
        missing += [
            a.shown() for a in self._args if a.option and a.required and getattr(ns, a.dest) is None
        ]
        if self._sub is not None and self._sub.required and not sub_chosen:
            missing.append(self._sub.dest or self._sub.shown())
        if missing:
            self.error(f"the following arguments are required: {', '.join(missing)}")
        unknown = unknown + toks[pos:]
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return ns

    # -- help ---------------------------------------------------------------------------

    def error(self, message: str):
        # Docker's way, not argparse's: the problem and where help is, without
        # a usage that for `run` is fifty lines.
        sys.stderr.write(f"{self.prog}: error: {message}\nSee '{self.prog} --help'.\n")
        sys.exit(2)

    def format_usage(self) -> str:
        if self.docker_help:
            return f"Usage:  {self.prog} {self.usage or self._docker_usage()}\n"
        parts = []
        for a in self._args:
            if a.option:
                flag = a.names[0]
                parts.append(f"[{flag} {a.value_name()}]" if a.takes_value else f"[{flag}]")
        for a in self._positionals:
            name = a.value_name()
            parts.append(
                {
                    None: name,
                    "?": f"[{name}]",
                    "*": f"[{name} ...]",
                    "+": f"{name} [{name} ...]",
                    REMAINDER: "...",
                }[a.nargs]
            )
        if self._sub is not None:
            parts.append(f"{self._sub.shown()} ...")
        lead = f"usage: {self.prog} "
        return lead + _wrap(parts, _width() - len(lead), " " * len(lead)) + "\n"

    def print_usage(self, file=None) -> None:
        (file or sys.stdout).write(self.format_usage())

    def _docker_usage(self) -> str:
        """[OPTIONS] and the positionals by name: CONTAINER [CONTAINER...]."""
        parts = ["[OPTIONS]"] if any(a.option and a.action != "help" for a in self._args) else []
        for a in self._positionals:
            name = (a.metavar or a.dest).upper()
            one = name[:-1] if a.nargs in ("+", "*") and name.endswith("S") else name
            parts.append(
                {
                    None: name,
                    "?": f"[{name}]",
                    "*": f"[{one}...]",
                    "+": f"{one} [{one}...]",
                    REMAINDER: "[COMMAND] [ARG...]",
                }[a.nargs]
            )
        if self._sub is not None:
            parts.append("COMMAND")
        return " ".join(parts)

    def _format_docker_help(self) -> str:
        out = [self.format_usage()]
        if self.description:
            out.append(f"\n{self.description}\n")
        if self._sub is not None:
            rows = [(n, h[:1].upper() + h[1:]) for n, h in self._sub.helps.items()]
            out.append("\nCommands:\n" + _table(rows))
        opts = []
        for a in self._args:
            if not a.option:
                continue
            shorts = [n for n in a.names if not n.startswith("--")]
            longs = [n for n in a.names if n.startswith("--")]
            names = ", ".join(shorts + longs) if shorts else "    " + ", ".join(longs)
            left = f"{names} {a.value_name()}" if a.takes_value else names
            text = a.help or ""
            opts.append((left, text[:1].upper() + text[1:]))
        if opts:
            out.append("\nOptions:\n" + _table(opts, col=34))
        return "".join(out)

    def format_help(self) -> str:
        if self.docker_help:
            return self._format_docker_help()
        out = [self.format_usage()]
        if self.description:
            out.append(f"\n{self.description}\n")
        rows = [(a.value_name(), a.help or "") for a in self._positionals]
        if self._sub is not None:
            rows.append((self._sub.shown(), ""))
            rows += [(f"  {n}", h) for n, h in self._sub.helps.items()]
        if rows:
            out.append("\npositional arguments:\n" + _table(rows))
        opts = []
        for a in self._args:
            if a.option:
                names = ", ".join(a.names)
                opts.append((f"{names} {a.value_name()}" if a.takes_value else names, a.help or ""))
        if opts:
            out.append("\noptions:\n" + _table(opts))
        return "".join(out)

    def print_help(self, file=None) -> None:
        (file or sys.stdout).write(self.format_help())


def _width() -> int:
    try:
        return int(os.environ["COLUMNS"]) - 2
    except (KeyError, ValueError):
        try:
            return os.get_terminal_size(1).columns - 2
        except OSError:
            return 78


def _wrap(words: list[str], width: int, indent: str) -> str:
    """Words (a usage's items, which keep their spaces) on lines of `width`."""
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > max(width, 20):
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return ("\n" + indent).join(lines)


def _table(rows: list[tuple[str, str]], col: int = 24) -> str:
    out = []
    for left, text in rows:
        head = "  " + left
        if not text:
            out.append(head)
            continue
        body = _wrap(text.split(" "), _width() - col, " " * col)
        if len(head) + 2 <= col:
            out.append(head.ljust(col) + body)
        else:
            out.append(head + "\n" + " " * col + body)
    return "\n".join(out) + "\n"
