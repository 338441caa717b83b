"""The seccomp compiler's programs, run by a small classic-BPF interpreter here
(the kernel runs them in tests/integration/test_security.py)."""

import errno
import struct

import pytest

# What this tests lives in the C core (its constants, its checks).
pytest.importorskip(
    "supervisor._corral_native", reason="the C core is not built (bash scripts/install.sh)"
)

from protocols import oci
from supervisor import _native
from supervisor.errors import SpecError
from supervisor.runtime import seccomp as sc

NR = _native.SYSCALLS


def run(prog: bytes, nr: int, args=(0,) * 6, arch: int = _native.AUDIT_ARCH) -> int:
    """Classic BPF as seccomp runs it (the instructions the compiler emits)."""
    args = (*args, *(0,) * (6 - len(args)))
    data = struct.pack("=iIQ6Q", nr, arch, 0, *args)
    insns = [struct.unpack_from("=HBBI", prog, i) for i in range(0, len(prog), 8)]
    a, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            a = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:
            a &= k
        elif code == 0x06:
            return k
        else:
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k}[code]
            pc += jt if taken else jf


@pytest.fixture(scope="module")
def default():
    return sc.compile_profile(sc.default_profile())


def test_default_allows_the_ordinary(default):
    for name in ("read", "write", "openat", "execve", "close_range", "capset", "ptrace"):
        assert run(default, NR[name]) == sc.RET_ALLOW, name
    assert run(default, NR["clone"], (0x1200011,)) == sc.RET_ALLOW  # fork: SIGCHLD|SETTID..
    assert run(default, NR["personality"], (0xFFFFFFFF,)) == sc.RET_ALLOW


def test_default_denies_what_docker_denies(default):
    eperm = sc.RET_ERRNO | errno.EPERM
    for name in ("mount", "unshare", "setns", "keyctl", "add_key", "bpf", "reboot", "kexec_load"):
        assert run(default, NR[name]) == eperm, name
    assert run(default, NR["clone"], (0x10000000,)) == eperm  # CLONE_NEWUSER
    assert run(default, NR["personality"], (0x0400000,)) == eperm  # READ_IMPLIES_EXEC
    assert run(default, NR["clone3"]) == sc.RET_ERRNO | errno.ENOSYS
    assert run(default, max(NR.values()) + 1) == eperm  # unknown to our headers
    assert run(default, NR["read"] | 0x40000000) == eperm  # x32
    assert run(default, NR["read"], arch=0x40000003) == sc.RET_KILL_PROCESS  # i386


def test_capabilities_unlock_their_syscalls():
    prog = sc.compile_profile(sc.default_profile(["CAP_SYS_ADMIN", "CAP_SYS_TIME"]))
    for name in ("mount", "unshare", "settimeofday"):
        assert run(prog, NR[name]) == sc.RET_ALLOW
    assert run(prog, NR["clone"], (0x10000000,)) == sc.RET_ALLOW
    assert run(prog, NR["keyctl"]) != sc.RET_ALLOW


@pytest.mark.parametrize(
    ("op", "value", "yes", "no"),
    [
        ("SCMP_CMP_EQ", 5, [5], [4, 5 + (1 << 32)]),
        ("SCMP_CMP_NE", 5, [4, 5 + (1 << 32)], [5]),
        ("SCMP_CMP_GT", 1 << 32, [(1 << 32) + 1, 1 << 33], [1 << 32, 5]),
        ("SCMP_CMP_GE", 1 << 32, [1 << 32, 1 << 33], [(1 << 32) - 1]),
        ("SCMP_CMP_LT", (1 << 32) + 2, [(1 << 32) + 1, 7], [(1 << 32) + 2, 1 << 33]),
        ("SCMP_CMP_LE", (1 << 32) + 2, [(1 << 32) + 2, 3], [(1 << 32) + 3]),
    ],
)
def test_argument_comparisons_are_64_bit(op, value, yes, no):
    prof = oci.Seccomp(
        default_action="SCMP_ACT_ERRNO",
        syscalls=[
            oci.SeccompSyscall(
                names=["write"],
                action="SCMP_ACT_ALLOW",
                args=[oci.SeccompArg(index=2, value=value, op=op)],
            )
        ],
    )
    prog = sc.compile_profile(prof)
    for v in yes:
        assert run(prog, NR["write"], (0, 0, v, 0, 0, 0)) == sc.RET_ALLOW, v
    for v in no:
        assert run(prog, NR["write"], (0, 0, v, 0, 0, 0)) != sc.RET_ALLOW, v


def test_bad_profiles_name_the_problem():
    with pytest.raises(SpecError, match="unknown action"):
        sc.compile_profile(oci.Seccomp(default_action="SCMP_ACT_NOPE"))
    with pytest.raises(SpecError, match="not this machine"):
        sc.compile_profile(
            oci.Seccomp(default_action="SCMP_ACT_ALLOW", architectures=["SCMP_ARCH_PPC64"])
        )
    bad = oci.SeccompArg(index=7, value=1, op="SCMP_CMP_EQ")
    rule = oci.SeccompSyscall(names=["read"], action="SCMP_ACT_ALLOW", args=[bad])
    with pytest.raises(SpecError, match="index 7"):
        sc.compile_profile(oci.Seccomp(default_action="SCMP_ACT_ERRNO", syscalls=[rule]))


def test_default_profile_is_short(default):
    assert len(default) // 8 < 300  # ranges, not one test per allowed syscall


def test_docker_profile_files_resolve_includes_and_excludes():
    """Docker's own profile format: a rule for CAP_SYS_ADMIN only must not apply
    to a container without it (ignoring `includes` would allow mount to all)."""
    import json

    text = json.dumps(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"name": "write", "action": "SCMP_ACT_ALLOW"},
                {
                    "names": ["mount"],
                    "action": "SCMP_ACT_ALLOW",
                    "includes": {"caps": ["CAP_SYS_ADMIN"]},
                },
                {
                    "names": ["kcmp"],
                    "action": "SCMP_ACT_ALLOW",
                    "excludes": {"caps": ["CAP_SYS_PTRACE"]},
                },
                {
                    "names": ["getpid"],
                    "action": "SCMP_ACT_ALLOW",
                    "includes": {"minKernel": "99.0"},
                },
                {
                    "names": ["getppid"],
                    "action": "SCMP_ACT_ALLOW",
                    "includes": {"arches": ["s390x"]},
                },
            ],
        }
    )
    plain = sc.compile_profile(sc.from_docker(text, ["CAP_CHOWN"]))
    admin = sc.compile_profile(sc.from_docker(text, ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]))
    allowed = lambda prog, name: run(prog, NR[name]) == sc.RET_ALLOW  # noqa: E731
    assert allowed(plain, "read") and allowed(plain, "write") and allowed(plain, "kcmp")
    assert not allowed(plain, "mount") and allowed(admin, "mount")
    assert not allowed(admin, "kcmp")
    assert not allowed(plain, "getpid") and not allowed(plain, "getppid")
    with pytest.raises(SpecError, match="not JSON"):
        sc.from_docker("{", [])
