"""Dockerfiles and .dockerignore as Docker reads them (issue #18). Pure."""

from __future__ import annotations

import pytest

from supervisor.build import ignore
from supervisor.build.dockerfile import DockerfileError, expand, parse


def test_instructions_continuations_comments_and_forms():
    df = parse(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=busybox\n"
        "FROM $BASE AS build\n"
        "run echo one \\\n"
        "  # a comment inside is dropped\n"
        "  && echo two\n"
        'CMD ["sh", "-c", "echo hi"]\n'
        "COPY --from=build --chown=1:2 /a /b\n"
        "\n"
        "ENTRYPOINT echo not json [\n"
    )
    assert [i.cmd for i in df.instructions] == ["ARG", "FROM", "RUN", "CMD", "COPY", "ENTRYPOINT"]
    run = df.instructions[2]
    assert run.rest == "echo one   && echo two" and run.line == 4 and run.json is None
    assert df.instructions[3].json == ["sh", "-c", "echo hi"]
    copy = df.instructions[4]
    assert copy.flags == {"from": "build", "chown": "1:2"} and copy.words() == ["/a", "/b"]
    assert df.instructions[5].json is None
    assert df.notes and "syntax" in df.notes[0]


def test_escape_directive():
    df = parse("# escape=`\nFROM scratch\nRUN echo a `\n  b\nCOPY c:\\dir d\n")
    assert df.escape == "`"
    assert df.instructions[1].rest == "echo a   b"
    assert df.instructions[2].rest == "c:\\dir d"


def test_heredocs():
    df = parse(
        "FROM busybox\n"
        "RUN <<EOF\n"
        "echo $HOME\n"
        "echo two\n"
        "EOF\n"
        'COPY <<-"END" /etc/greeting\n'
        "\thello $NAME\n"
        "\tEND\n"
        "CMD true\n"
    )
    run, copy = df.instructions[1], df.instructions[2]
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo $HOME\necho two\n"
    assert run.heredocs[0].expand
    h = copy.heredocs[0]
    assert (h.name, h.content, h.expand, h.chomp) == ("END", "hello $NAME\n", False, True)
    assert df.instructions[3].cmd == "CMD"


def test_errors_name_the_line():
    with pytest.raises(DockerfileError, match=r"Dockerfile:3: unknown instruction: FROBNICATE"):
        parse("FROM scratch\n\nFROBNICATE x\n")
    with pytest.raises(DockerfileError, match="no FROM"):
        parse("RUN true\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: RUN before the first FROM"):
        parse("ARG X\nRUN true\nFROM scratch\n")
    with pytest.raises(DockerfileError, match="unknown flag: --frm"):
        parse("FROM scratch\nCOPY --frm=a b c\n")
    with pytest.raises(DockerfileError, match="heredoc EOF is never closed"):
        parse("FROM scratch\nRUN <<EOF\necho\n")
    with pytest.raises(DockerfileError, match="not allowed in ONBUILD"):
        parse("FROM scratch\nONBUILD FROM x\n")


@pytest.mark.parametrize(
    "text,want",
    [
        ("$A/${A}", "a/a"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${A:+set}", "set"),
        ("${UNSET:+set}", ""),
        ("\\$A", "$A"),
        ("${UNSET:-${A}x}", "ax"),
        ("cost $", "cost $"),
    ],
)
def test_expansion(text, want):
    assert expand(text, {"A": "a", "EMPTY": ""}) == want


def test_dockerignore_rules():
    pats = ignore.parse("# comment\nnode_modules\n*.log\n!keep.log\ndocs/**/*.md\n/build/\ntmp?\n")
    yes = ["node_modules", "node_modules/x/y.js", "a.log", "docs/a.md", "docs/x/y/z.md", "build/o"]
    no = ["keep.log", "src/a.log", "docs/a.txt", "tmp", "src/node_modules2"]
    assert [p for p in yes if not ignore.ignored(pats, p)] == []
    assert [p for p in no if ignore.ignored(pats, p)] == []
    assert ignore.ignored(pats, "tmp1")
    assert ignore.prunable(pats, "node_modules")
    assert not ignore.prunable(ignore.parse("big\n!big/keep\n"), "big")
    assert not ignore.ignored(ignore.parse("big\n!big/keep\n"), "big/keep")
