import pytest

from supervisor.client.templates import TemplateError, render, table

OBJ = {
    "Id": "abc",
    "State": {"Pid": 42, "Running": True},
    "Config": {"Env": ["A=1", "B=2"], "Labels": {"k": "v"}},
    "NetworkSettings": {
        "Networks": {"bridge": {"IPAddress": "10.88.0.2"}, "app": {"IPAddress": "10.89.0.3"}}
    },
}


@pytest.mark.parametrize(
    ("template", "out"),
    [
        ("{{.State.Pid}}", "42"),
        ("{{.State.Running}}", "true"),
        ("pid={{ .State.Pid }} id={{.Id}}", "pid=42 id=abc"),
        ("{{json .Config.Labels}}", '{"k":"v"}'),
        ('{{index .Config.Labels "k"}}', "v"),
        ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
        ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.88.0.2 10.89.0.3 "),
        ("{{upper .Id}}", "ABC"),
        ("{{.Nope}}", "<no value>"),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{len .Config.Env}} {{len .NetworkSettings.Networks}}", "2 2"),
        ('{{join .Config.Env ","}}', "A=1,B=2"),
        ("{{title .Id}}", "Abc"),
    ],
)
def test_docker_templates(template, out):
    assert render(template, OBJ) == out


@pytest.mark.parametrize(
    "bad", ["{{range .Config.Env}}x", "{{end}}", "{{frob .Id}}", "{{Id}}", "{{join .Config.Env}}"]
)
def test_bad_templates_are_named(bad):
    with pytest.raises(TemplateError):
        render(bad, OBJ)


def test_table_has_docker_headers_and_aligned_columns():
    rows = [{"ID": "a1", "Names": "web"}, {"ID": "b22222", "Names": "db"}]
    lines = table("table {{.ID}}\\t{{.Names}}", rows, {".ID": "CONTAINER ID", ".Names": "NAMES"})
    assert lines == ["CONTAINER ID   NAMES", "a1             web", "b22222         db"]
