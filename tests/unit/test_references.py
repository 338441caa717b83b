"""Image references, normalized as Docker normalizes them."""

from __future__ import annotations

import pytest

from supervisor.images.registry import DEFAULT_REGISTRY, Reference, RegistryError
from supervisor.images.store import normalize


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "local"),
    [
        ("busybox", DEFAULT_REGISTRY, "library/busybox", "latest", "busybox:latest"),
        (
            "docker.io/library/busybox",
            DEFAULT_REGISTRY,
            "library/busybox",
            "latest",
            "busybox:latest",
        ),
        ("docker.io/busybox:1.36", DEFAULT_REGISTRY, "library/busybox", "1.36", "busybox:1.36"),
        ("index.docker.io/foo/bar", DEFAULT_REGISTRY, "foo/bar", "latest", "foo/bar:latest"),
        (
            "registry-1.docker.io/library/alpine",
            DEFAULT_REGISTRY,
            "library/alpine",
            "latest",
            "alpine:latest",
        ),
        ("localhost:5000/x/y:2", "localhost:5000", "x/y", "2", "localhost:5000/x/y:2"),
        ("quay.io/org/img", "quay.io", "org/img", "latest", "quay.io/org/img:latest"),
    ],
)
def test_references(text, registry, repository, tag, local):
    r = Reference(text)
    assert (r.registry, r.repository, r.tag, r.local_name) == (registry, repository, tag, local)
    assert normalize(text) == local


def test_bad_repository():
    with pytest.raises(RegistryError, match="invalid repository name"):
        Reference("Upper/Case")
