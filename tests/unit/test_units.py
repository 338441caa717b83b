import pytest

from supervisor.daemon.main import parse_args
from supervisor.units import parse_size


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("1024", 1024),
        ("100k", 102400),
        ("64m", 64 << 20),
        ("1g", 1 << 30),
        ("1.5g", 3 << 29),
        ("512MiB", 512 << 20),
        ("2 GB", 2 << 30),
        ("10b", 10),
    ],
)
def test_docker_sizes(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "m", "12q", "-1", "1..2m"])
def test_bad_sizes_are_named(text):
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


def test_events_max_size_flag(capsys):
    assert parse_args([]).events_max_size == 64 << 20
    assert parse_args(["--events-max-size", "1m"]).events_max_size == 1 << 20
    with pytest.raises(SystemExit):
        parse_args(["--events-max-size", "1k"])
    assert "below the 64k" in capsys.readouterr().err
