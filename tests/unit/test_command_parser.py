"""The client builds only the chosen command's parser; the result must be the
same as the whole parser's."""

import pytest

from supervisor.client.parser import _command_name, build_parser, parse_args


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["run", "--rm", "x"], "run"),
        (["-H", "/s", "ps", "-a"], "ps"),
        (["--socket", "/s", "image", "ls"], "image"),
        (["--socket=/s", "logs", "c"], "logs"),
        (["-H/s", "wait", "c"], "wait"),
        (["--help"], None),
        ([], None),
    ],
)
def test_command_name(argv, name):
    assert _command_name(argv) == name


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--rm", "-e", "A=1", "-m", "64m", "--rootfs", "/r", "/bin/true"],
        ["-H", "/s", "ps", "-a", "--format", "json"],
        ["network", "connect", "n", "c"],
        ["exec", "-it", "c", "sh", "-c", "echo"],
    ],
)
def test_one_command_parses_as_the_whole_parser(argv):
    assert parse_args(argv) == build_parser().parse_args(argv)


def test_unknown_command_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        parse_args(["rn", "x"])
    err = capsys.readouterr().err
    assert "invalid choice: 'rn'" in err and "'volume'" in err and "'run'" in err
