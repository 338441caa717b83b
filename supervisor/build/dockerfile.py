"""Reading a Dockerfile, as Docker's parser and BuildKit's frontend read it.

Parser directives first (`# escape=` honoured; `# syntax=` and `# check=`
accepted and noted: there is one frontend here); then lines joined by the
escape character at their end, comments dropped (also between continued
lines), heredocs (`RUN <<EOF`, `<<-EOF` with tabs stripped, `<<"EOF"` not
expanded, several per instruction) taken whole. Instructions are
case-insensitive; an unknown one is an error that names its line. A value
that may be a JSON array (RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD, VOLUME) is
the exec form when it parses as one. Variables ($X, ${X}, ${X:-w}, ${X:+w},
`\\$` for a dollar) are expanded by the builder, where Docker expands them
(expand()).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from supervisor.errors import BuildError

INSTRUCTIONS = (
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
)  # fmt: skip
JSON_FORMS = ("RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME")
HEREDOC_FORMS = ("RUN", "COPY", "ADD")
# Flags each instruction takes (--name=value); any other is an error.
FLAGS = {
    "FROM": {"platform"},
    "RUN": {"network", "security", "mount"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}


DockerfileError = BuildError  # what the parser raises: `Dockerfile:LINE: what`


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool  # <<EOF (yes) or <<"EOF" / <<'EOF' (no)
    chomp: bool = False  # <<-EOF: leading tabs were stripped


@dataclass(frozen=True)
class Instruction:
    cmd: str  # upper case
    rest: str  # the arguments as written, flags removed, continuations joined
    line: int  # where it starts (1-based)
    flags: dict[str, str] = field(default_factory=dict)
    json: list[str] | None = None  # the exec form
    heredocs: tuple[Heredoc, ...] = ()
    original: str = ""  # the instruction as written, for history's created_by

    def words(self) -> list[str]:
        """The arguments as a list: the JSON array, else split on whitespace."""
        return list(self.json) if self.json is not None else self.rest.split()


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    notes: list[str] = field(default_factory=list)  # directives noted, not carried out


def _directives(lines: list[str], notes: list[str]) -> tuple[str, int]:
    """(escape character, index of the first line after the directives)."""
    escape, i, seen = "\\", 0, set()
    while i < len(lines):
        s = lines[i].strip()
        if not s.startswith("#"):
            break
        body = s[1:].strip()
        key, eq, value = body.partition("=")
        key = key.strip().lower()
        if not eq or not key.isalpha() or key in seen:
            break
        seen.add(key)
        value = value.strip()
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"Dockerfile:{i + 1}: invalid escape token {value!r}")
            escape = value
        elif key == "syntax":
            notes.append(f"# syntax={value} ignored: Corral's own frontend reads this file")
        elif key != "check":
            break
        i += 1
    return escape, i


def _heredoc_names(rest: str) -> list[tuple[str, bool, bool]]:
    """The heredocs an instruction opens: (terminator, expand, chomp)."""
    out = []
    i = 0
    while (i := rest.find("<<", i)) >= 0:
        j = i + 2
        chomp = rest.startswith("-", j)
        j += chomp
        quote = rest[j] if j < len(rest) and rest[j] in "'\"" else ""
        j += bool(quote)
        k = j
        while k < len(rest) and (rest[k].isalnum() or rest[k] == "_"):
            k += 1
        name = rest[j:k]
        if name and (not quote or rest[k : k + 1] == quote):
            out.append((name, not quote, chomp))
        i = k + 1
    return out


def _split_flags(cmd: str, rest: str, where: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        word, _, tail = rest.partition(" ")
        name, eq, value = word[2:].partition("=")
        if name not in FLAGS.get(cmd, set()):
            raise DockerfileError(f"{where}: unknown flag: --{name} (for {cmd})")
        flags[name] = value if eq else "true"
        rest = tail.lstrip()
    return flags, rest


def json_array(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """The instructions of `text`. DockerfileError names the line of the first
    problem."""
    lines = text.splitlines()
    notes: list[str] = []
    escape, i = _directives(lines, notes)
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        start = i
        s = raw.strip()
        i += 1
        if not s or s.startswith("#"):
            continue
        parts = [raw]
        # Joined while a line ends with the escape character; comments and
        # blank lines between continued lines are dropped.
        while parts[-1].rstrip().endswith(escape):
            parts[-1] = parts[-1].rstrip()[:-1]
            while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
            parts.append(lines[i])
            i += 1
        joined = "".join(parts).strip()
        word, _, rest = joined.partition(" ")
        cmd = word.upper()
        where = f"{name}:{start + 1}"
        if cmd not in INSTRUCTIONS:
            raise DockerfileError(f"{where}: unknown instruction: {word}")
        rest = rest.strip()
        flags, rest = _split_flags(cmd, rest, where)
        heredocs: list[Heredoc] = []
        if cmd in HEREDOC_FORMS and "<<" in rest:
            for term, expand, chomp in _heredoc_names(rest):
                body = []
                while i < len(lines):
                    line = lines[i]
                    i += 1
                    check = line.lstrip("\t") if chomp else line
                    if check == term:
                        break
                    body.append(check if chomp else line)
                else:
                    raise DockerfileError(f"{where}: heredoc {term} is never closed")
                content = "\n".join(body) + ("\n" if body else "")
                heredocs.append(Heredoc(term, content, expand, chomp))
        if cmd == "ONBUILD":
            inner, _, _ = rest.partition(" ")
            if (
                inner.upper() in ("ONBUILD", "FROM", "MAINTAINER")
                or inner.upper() not in INSTRUCTIONS
            ):
                raise DockerfileError(
                    f"{where}: {inner.upper() or 'an instruction'} is not allowed in ONBUILD"
                )
        out.append(
            Instruction(
                cmd=cmd,
                rest=rest,
                line=start + 1,
                flags=flags,
                json=json_array(rest) if cmd in JSON_FORMS and not heredocs else None,
                heredocs=tuple(heredocs),
                original=joined,
            )
        )
    if not any(ins.cmd == "FROM" for ins in out):
        raise DockerfileError(
            f"{name}: no FROM instruction: a build starts from an image or scratch"
        )
    first = next(ins for ins in out if ins.cmd not in ("ARG",))
    if first.cmd != "FROM":
        raise DockerfileError(
            f"{name}:{first.line}: {first.cmd} before the first FROM (only ARG may come first)"
        )
    return Dockerfile(out, escape, notes)


# -- variables -------------------------------------------------------------------------------


def expand(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """Docker's substitution in a Dockerfile's words: $X, ${X}, ${X:-w},
    ${X:+w}, ${X-w}, ${X+w}; the escape character before `$` keeps it."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == escape and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if c != "$":
            out.append(c)
            i += 1
            continue
        if text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith("${", j):
                    depth += 1
                    j += 1
                elif text[j] == "}":
                    depth -= 1
                j += 1
            if depth:
                raise DockerfileError(f"missing '}}' in {text!r}")
            out.append(_braced(text[i + 2 : j - 1], env, escape))
            i = j
            continue
        j = i + 1
        while j < len(text) and (text[j].isalnum() or text[j] == "_"):
            j += 1
        if j == i + 1:
            out.append("$")
            i += 1
            continue
        out.append(env.get(text[i + 1 : j], ""))
        i = j
    return "".join(out)


def _braced(body: str, env: dict[str, str], escape: str) -> str:
    k = 0
    while k < len(body) and (body[k].isalnum() or body[k] == "_"):
        k += 1
    name, rest = body[:k], body[k:]
    if not rest:
        return env.get(name, "")
    for op in (":-", ":+", "-", "+"):
        if rest.startswith(op):
            word = expand(rest[len(op) :], env, escape)
            value = env.get(name)
            is_set = bool(value) if op.startswith(":") else value is not None
            if op.endswith("-"):
                return value if is_set else word  # type: ignore[return-value]
            return word if is_set else ""
    raise DockerfileError(f"unsupported modifier in ${{{body}}}")
