"""`.dockerignore`, with Docker's rules (moby's patternmatcher): one pattern a
line, `#` comments, `!` for an exception; paths cleaned, a leading `/`
dropped; `*` and `?` within one path element, `[...]` classes, `**` any number
of elements; a pattern that matches a directory matches all under it; the last
pattern that matches a path decides. The client applies it while it walks the
context, so a large ignored folder is never read (ignore.py's `prunable`).
The standard library only: the client imports it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, without its "!"
    exclusion: bool  # a "!" line: matched paths are kept
    regex: re.Pattern[str]


def _clean(p: str) -> str:
    p = os.path.normpath(p.strip()).lstrip("/")
    return "" if p == "." else p


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            else:
                out.append(".*")
                i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise ValueError(f".dockerignore: {pattern!r}: an unclosed [")
            cls = pattern[i + 1 : j]
            out.append("[" + ("^" + cls[1:] if cls.startswith("!") else cls) + "]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + "$")


def parse(text: str) -> list[Pattern]:
    """The patterns of a .dockerignore. ValueError names a malformed one."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        body = _clean(line[1:] if exclusion else line)
        if not body:
            continue
        out.append(Pattern(body, exclusion, _regex(body)))
    return out


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def ignored(patterns: list[Pattern], path: str) -> bool:
    """Is `path` (relative to the context, "/"-separated) left out?"""
    result = False
    candidates = _parents(path)
    for p in patterns:
        if any(p.regex.match(c) for c in candidates):
            result = not p.exclusion
    return result


def prunable(patterns: list[Pattern], directory: str) -> bool:
    """May the walk skip `directory` whole: it is ignored, and no exception
    could bring back anything under it."""
    if not ignored(patterns, directory):
        return False
    for p in patterns:
        if not p.exclusion:
            continue
        # An exception naming something under the directory (or a wildcard
        # that could) keeps the walk going.
        if p.text.startswith(directory + "/") or any(ch in p.text for ch in "*?["):
            return False
    return True
