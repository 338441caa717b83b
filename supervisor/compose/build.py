"""A Compose file's `build:`: the services' images built by the daemon
(`corral build`'s path: context, dockerfile, args, target), tagged as the
service's image (its `image:`, else PROJECT-SERVICE). `up` builds those that
are missing, `up --build` and `compose build` all of them."""

from __future__ import annotations

import os
import sys

from protocols import compose as c
from protocols.lite import api
from supervisor.build import ignore
from supervisor.client.build import Plain, run_build
from supervisor.client.connection import Client, DaemonError
from supervisor.compose import ComposeError, plan


def _present(cl: Client, ref: str) -> bool:
    try:
        cl.call(api.ImageInspect(ref=ref))
        return True
    except DaemonError:
        return False


def build_services(
    cl: Client, p: c.Project, services: list[str], *, always: bool, no_cache: bool = False
) -> int:
    names = plan.with_dependencies(p, services) if services else plan.order(p)
    for name in names:
        svc = p.services[name]
        if svc.build is None:
            continue
        ref = plan.image_of(p, name)
        if not always and _present(cl, ref):
            continue
        b = svc.build
        dockerfile = (
            b.dockerfile if os.path.isabs(b.dockerfile) else os.path.join(b.context, b.dockerfile)
        )
        try:
            with open(dockerfile, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ComposeError(
                f"services.{name}.build: reading {dockerfile}: {e.strerror}"
            ) from None
        patterns: list[ignore.Pattern] = []
        ignore_file = os.path.join(b.context, ".dockerignore")
        if os.path.isfile(ignore_file):
            with open(ignore_file, encoding="utf-8") as f:
                patterns = ignore.parse(f.read())
        print(f" Service {name}  Building", file=sys.stderr, flush=True)
        req = api.Build(
            dockerfile=text,
            dockerfile_name=os.path.basename(dockerfile),
            tags=[ref],
            build_args=dict(b.args),
            target=b.target,
            no_cache=b.no_cache or no_cache,
            labels={**b.labels, plan.PROJECT: p.name, plan.SERVICE: name},
        )
        run_build(cl, req, b.context, patterns, Plain(sys.stderr), quiet=False)
        print(f" Service {name}  Built", file=sys.stderr, flush=True)
    return 0
