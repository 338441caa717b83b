"""Probe the machine once: what the kernel offers decides what can be tested.

Tests that need a missing feature are skipped with the reason (never passed
silently), as trio's tutil does.
"""

from __future__ import annotations

import os
import shutil

import pytest

from supervisor.runtime import cgroups

IS_ROOT = os.geteuid() == 0


def _cgroup_version() -> str | None:
    try:
        return cgroups.detect()
    except Exception:
        return None


CGROUP_VERSION = _cgroup_version()
UNIFIED_MOUNTS = [m.path for m in cgroups.mounts() if m.fstype == "cgroup2"]
BUSYBOX = shutil.which("busybox")


def _native_built() -> bool:
    try:
        import supervisor._corral_native  # noqa: F401
    except ImportError:
        return False
    return True


# Unit tests of what the C core holds (the plan's encoding, seccomp's and the
# device program's BPF, the kernel's constants): skipped, saying why, where the
# C build is missing; every other unit test runs without it, and without root.
NATIVE = _native_built()
needs_native = pytest.mark.skipif(
    not NATIVE, reason="the C core is not built (bash scripts/install.sh builds it)"
)

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root: real namespaces, mounts, cgroups")
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox-static is not installed")
needs_v2_hierarchy = pytest.mark.skipif(
    not UNIFIED_MOUNTS, reason="no cgroup2 hierarchy is mounted on this host"
)
needs_v1 = pytest.mark.skipif(CGROUP_VERSION != "v1", reason="host is not cgroup v1")
