"""`corral-runc features`: what this runtime supports, in the JSON runc 1.1+
prints (the runtime-spec's features document), built from what the code
knows, not a list kept by hand beside it."""

from __future__ import annotations


def features() -> dict:
    from supervisor import _native
    from supervisor.runtime import plan, seccomp
    from supervisor.runtime.hooks import KINDS

    mount_options = sorted(
        {*plan._FLAG_OPTIONS, *plan._PROP_FLAG, *(f"r{p}" for p in plan._PROP_FLAG if p != "rec")}
    )
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": [_camel(k) for k in KINDS],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": sorted(_native.NS_FLAGS),
            "capabilities": sorted(_native.CAPS),
            "cgroup": {
                "v1": True,
                "v2": True,
                "systemd": False,
                "systemdUser": False,
            },
            "seccomp": {
                "enabled": True,
                "actions": [
                    "SCMP_ACT_ALLOW",
                    "SCMP_ACT_ERRNO",
                    "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG",
                    "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP",
                ],
                "operators": [
                    "SCMP_CMP_EQ",
                    "SCMP_CMP_GE",
                    "SCMP_CMP_GT",
                    "SCMP_CMP_LE",
                    "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ",
                    "SCMP_CMP_NE",
                ],
                "archs": sorted(set(seccomp._ARCH_NAMES.values())),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"io.github.corral.runtime": "corral-runc"},
    }


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(w.title() for w in rest)
