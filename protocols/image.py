"""The OCI image spec's JSON documents (config, manifest, index), as msgspec
Structs: strict about types, tolerant of unknown fields (Docker's own
configs carry many)."""

from __future__ import annotations

import msgspec


class _Base(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    pass


class Healthcheck(_Base, rename="pascal"):
    test: list[str] | None = None
    interval: int = 0  # nanoseconds
    timeout: int = 0
    retries: int = 0
    start_period: int = 0


class RunConfig(_Base, rename="pascal"):
    """An image's defaults for its containers (Docker's ContainerConfig)."""

    env: list[str] | None = None
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] | None = None
    stop_signal: str = ""
    healthcheck: Healthcheck | None = None
    exposed_ports: dict[str, dict] | None = None
    volumes: dict[str, dict] | None = None
    shell: list[str] | None = None  # SHELL: what shell forms run with
    on_build: list[str] | None = None  # ONBUILD: instructions for builds FROM this image


class RootFS(_Base):
    type: str = "layers"
    diff_ids: list[str] = []


class History(_Base):
    created: str = ""
    created_by: str = ""
    comment: str = ""
    empty_layer: bool = False


class ImageConfig(_Base):
    # Required (no defaults): omit_defaults would drop them, and the spec needs them.
    architecture: str
    os: str
    created: str = ""
    author: str = ""
    config: RunConfig = RunConfig()
    rootfs: RootFS = RootFS()
    history: list[History] = []


class Descriptor(_Base, rename="camel", kw_only=True):
    media_type: str = ""
    digest: str
    size: int = 0
    annotations: dict[str, str] | None = None
    platform: dict[str, str] | None = None


class Manifest(_Base, rename="camel", kw_only=True):
    schema_version: int  # required: 2 (and written, which a default would not be)
    media_type: str = ""
    config: Descriptor
    layers: list[Descriptor] = []


class Index(_Base, rename="camel"):
    schema_version: int
    media_type: str = ""
    manifests: list[Descriptor] = []


class DockerArchiveEntry(_Base, rename="pascal", kw_only=True):
    """One element of a `docker save` archive's manifest.json."""

    config: str
    repo_tags: list[str] | None = None
    layers: list[str] = []
