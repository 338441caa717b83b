"""Which handler answers each request: the api_*.py modules, by resource."""

from __future__ import annotations

from supervisor.daemon import (
    api_build,
    api_compose,
    api_containers,
    api_images,
    api_networks,
    api_streams,
    api_system,
    api_volumes,
)

ROUTES = {
    **api_containers.ROUTES,
    **api_streams.ROUTES,
    **api_images.ROUTES,
    **api_networks.ROUTES,
    **api_volumes.ROUTES,
    **api_system.ROUTES,
    **api_compose.ROUTES,
    **api_build.ROUTES,
}
