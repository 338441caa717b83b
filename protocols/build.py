"""`corral build`'s messages (in api.py's unions): the request, the steps'
progress as BuildKit numbers them, the result; and `builder prune`."""

from __future__ import annotations

import msgspec


class _Msg(
    msgspec.Struct, frozen=True, tag=True, tag_field="msg", kw_only=True, omit_defaults=True
):
    """A message of api.py's Request or Response union (the same options)."""


class Build(_Msg):
    """Build an image from `dockerfile` (its text: -f may name a file outside the
    context) and the context the client sends next, a tar as StdinData chunks
    then StdinClose (.dockerignore already applied). Answered with
    BuildProgress as the build goes, then BuildResult, or an Error naming the
    step that failed."""

    dockerfile: str
    dockerfile_name: str = "Dockerfile"  # for messages: Dockerfile:LINE
    tags: list[str] = []
    build_args: dict[str, str] = {}
    target: str = ""
    no_cache: bool = False
    pull: bool = False  # always pull FROM images, even those the store has
    labels: dict[str, str] = {}


class BuildProgress(_Msg):
    """One step's news: `vertex` numbers it (#N), `name` is BuildKit's
    ("[build 2/4] RUN make"); status started | log | cached | done | error."""

    vertex: int
    name: str
    status: str
    data: bytes = b""  # the step's output (status log)
    elapsed: float = 0.0  # seconds, with done and error


class BuildResult(_Msg):
    image_id: str
    tags: list[str] = []
    warnings: list[str] = []


class BuilderPrune(_Msg):
    """Empty the build cache: the steps' images no tag or container holds.
    Answered with PruneResult."""
