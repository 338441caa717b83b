"""Seccomp: OCI profiles compiled to classic BPF, and the default profile.

The program the kernel runs on every syscall of the container:

    arch != this build's       -> kill the process (no other ABI's numbers here)
    x32 ABI number (x86_64)    -> the default action
    rules with argument checks -> their action, in the profile's order
    rules without              -> their action, numbers merged into ranges
    anything else              -> the default action

Names are mapped to numbers with the build's own headers (_native.SYSCALLS); a
name they do not know is skipped, as runc and libseccomp skip it, so it falls
to the default action. The default profile is Docker's in effect: everything
the headers name is allowed except what Docker's profile keeps from a container
without the capability that would need it, `clone` without namespace flags,
`personality` for the values Docker lists, and `clone3` answered with ENOSYS
(the C library then falls back to clone, whose flags can be checked).
"""

from __future__ import annotations

import errno
import os
import struct

from protocols import lite
from protocols.lite import minijson
from supervisor import _native
from supervisor.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:  # the daemon's msgspec, imported where profiles are made, not run
    from collections.abc import Iterable

    from protocols import oci

# linux/filter.h and linux/seccomp.h: kernel ABI.
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ, _JGT, _JGE = 0x15, 0x25, 0x35  # BPF_JMP | BPF_J* | BPF_K
_AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_NR, _ARCH, _ARGS = 0, 4, 16  # offsets in struct seccomp_data
_X32_BIT = 0x40000000
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
MAX_INSNS = 4096

_ARCH_NAMES = {0xC000003E: "SCMP_ARCH_X86_64", 0xC00000B7: "SCMP_ARCH_AARCH64"}


def action(name: str, errno_ret: int | None = None) -> int:
    """An OCI action as the filter's return value."""
    data = (errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF
    match name:
        case "SCMP_ACT_ALLOW":
            return RET_ALLOW
        case "SCMP_ACT_ERRNO":
            return RET_ERRNO | data
        case "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD":
            return RET_KILL_THREAD
        case "SCMP_ACT_KILL_PROCESS":
            return RET_KILL_PROCESS
        case "SCMP_ACT_TRAP":
            return RET_TRAP
        case "SCMP_ACT_LOG":
            return RET_LOG
        case "SCMP_ACT_TRACE":
            return RET_TRACE | (0 if errno_ret is None else data)
    raise SpecError("linux.seccomp", f"unknown action {name!r}")


class _Prog:
    """Instructions with symbolic forward jumps, resolved by `bytes()`."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, object, object, int]] = []
        self.labels: dict[str, int] = {}
        self._n = 0

    def label(self) -> str:
        self._n += 1
        return f"L{self._n}"

    def here(self, label: str) -> None:
        self.labels[label] = len(self.insns)

    def ld(self, off: int) -> None:
        self.insns.append((_LD_ABS, 0, 0, off))

    def jmp(self, code: int, k: int, jt: int | str = 0, jf: int | str = 0) -> None:
        self.insns.append((code, jt, jf, k))

    def and_(self, k: int) -> None:
        self.insns.append((_AND, 0, 0, k))

    def ret(self, k: int) -> None:
        self.insns.append((_RET, 0, 0, k))

    def bytes(self) -> bytes:
        out = []
        for i, (code, jt, jf, k) in enumerate(self.insns):
            offs = []
            for j in (jt, jf):
                off = j if isinstance(j, int) else self.labels[j] - i - 1
                if not 0 <= off <= 255:
                    raise SpecError("linux.seccomp", "a rule too long for a BPF jump")
                offs.append(off)
            out.append(struct.pack("=HBBI", code, offs[0], offs[1], k & 0xFFFFFFFF))
        if len(out) > MAX_INSNS:
            raise SpecError("linux.seccomp", f"{len(out)} BPF instructions: more than {MAX_INSNS}")
        return b"".join(out)


def _arg_check(p: _Prog, a: oci.SeccompArg, fail: str) -> None:
    """Code that falls through when argument `a` holds and jumps to `fail` if not."""
    if not 0 <= a.index <= 5:
        raise SpecError("linux.seccomp", f"argument index {a.index} is not 0-5")
    lo, hi = _ARGS + 8 * a.index, _ARGS + 8 * a.index + 4  # little-endian halves
    v, v2 = a.value & (2**64 - 1), a.value_two & (2**64 - 1)
    ok = p.label()
    match a.op:
        case "SCMP_CMP_EQ" | "SCMP_CMP_MASKED_EQ":
            mask, want = (v, v2) if a.op == "SCMP_CMP_MASKED_EQ" else (2**64 - 1, v)
            for off, shift in ((lo, 0), (hi, 32)):
                p.ld(off)
                if a.op == "SCMP_CMP_MASKED_EQ":
                    p.and_(mask >> shift)
                p.jmp(_JEQ, (want >> shift) & 0xFFFFFFFF, 0, fail)
        case "SCMP_CMP_NE":
            p.ld(lo)
            p.jmp(_JEQ, v & 0xFFFFFFFF, 0, ok)
            p.ld(hi)
            p.jmp(_JEQ, v >> 32, fail, ok)
        case "SCMP_CMP_GT" | "SCMP_CMP_GE" | "SCMP_CMP_LT" | "SCMP_CMP_LE":
            # Compare the high words; only when they are equal do the low decide.
            p.ld(hi)
            if a.op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
                p.jmp(_JGT, v >> 32, ok, 0)
                p.jmp(_JEQ, v >> 32, 0, fail)
                p.ld(lo)
                p.jmp(_JGT if a.op == "SCMP_CMP_GT" else _JGE, v & 0xFFFFFFFF, ok, fail)
            else:
                p.jmp(_JGE, v >> 32, 0, ok)
                p.jmp(_JEQ, v >> 32, 0, fail)
                p.ld(lo)
                p.jmp(_JGE if a.op == "SCMP_CMP_LT" else _JGT, v & 0xFFFFFFFF, fail, ok)
        case _:
            raise SpecError("linux.seccomp", f"unknown comparison {a.op!r}")
    p.here(ok)


def _ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def compile_profile(
    profile: oci.Seccomp,
    *,
    arch: int = _native.AUDIT_ARCH,
    syscalls: dict[str, int] = _native.SYSCALLS,
) -> bytes:
    """The BPF program (struct sock_filter[]) for `profile` on `arch`."""
    default = action(profile.default_action, profile.default_errno_ret)
    if profile.architectures and _ARCH_NAMES.get(arch) not in profile.architectures:
        names = ", ".join(profile.architectures)
        raise SpecError("linux.seccomp.architectures", f"{names}: not this machine's")
    p = _Prog()
    p.ld(_ARCH)
    p.jmp(_JEQ, arch, 1, 0)
    p.ret(RET_KILL_PROCESS)
    p.ld(_NR)
    if arch == 0xC000003E:
        p.jmp(_JGE, _X32_BIT, 0, 1)
        p.ret(default)
    simple: dict[int, list[int]] = {}
    for i, rule in enumerate(profile.syscalls or []):
        act = action(rule.action, rule.errno_ret)
        numbers = [syscalls[n] for n in rule.names if n in syscalls]
        if not rule.args:
            if act != default:
                simple.setdefault(act, []).extend(numbers)
            continue
        if len(rule.args) > 6:
            raise SpecError(f"linux.seccomp.syscalls[{i}].args", "more than six arguments")
        for nr in numbers:
            nxt = p.label()
            p.ld(_NR)
            p.jmp(_JEQ, nr, 0, nxt)
            for a in rule.args:
                _arg_check(p, a, nxt)
            p.ret(act)
            p.here(nxt)
    p.ld(_NR)
    for act, numbers in simple.items():
        for first, last in _ranges(numbers):
            if first == last:
                p.jmp(_JEQ, first, 0, 1)
            else:
                p.jmp(_JGE, first, 0, 2)
                p.jmp(_JGT, last, 1, 0)
            p.ret(act)
    p.ret(default)
    return p.bytes()


_COMPILED: dict[bytes, bytes] = {}  # the profile's JSON -> its program; the last 32


def compiled(profile: oci.Seccomp) -> bytes:
    """compile_profile for this machine, remembered: a daemon's containers mostly
    share a profile (0.1 ms a compile, 0.003 ms the key). `profile` is the
    daemon's msgspec Struct or, from a bundle's config.json, an oci_lite one."""
    if isinstance(profile, lite.Lite):
        key = minijson.dumps(lite.to_builtins(profile))
    else:
        import msgspec

        key = msgspec.json.encode(profile)
    found = _COMPILED.get(key)
    if found is None:
        if len(_COMPILED) >= 32:
            del _COMPILED[next(iter(_COMPILED))]
        found = _COMPILED[key] = compile_profile(profile)
    return found


# -- Docker's profile files -------------------------------------------------------------

_GOARCH = {0xC000003E: ("amd64", "x86_64"), 0xC00000B7: ("arm64", "aarch64")}


def _kernel_at_least(version: str) -> bool:
    import re

    have = [int(x) for x in re.findall(r"\d+", os.uname().release)[:2]]
    want = [int(x) for x in re.findall(r"\d+", version)[:2]]
    return have >= want


def from_docker(text: str, caps: Iterable[str]) -> oci.Seccomp:
    """A profile file as Docker takes it: OCI's fields plus, per rule, `includes`
    and `excludes` (caps, arches, minKernel), which Docker resolves for the
    container before the runtime sees the profile, and so does this. Ignoring
    them would apply, say, the mount rule Docker gives only to CAP_SYS_ADMIN."""
    import json  # the daemon's: a profile file is its input only

    import msgspec

    from protocols import oci

    try:
        raw = json.loads(text)
    except ValueError as e:
        raise SpecError("seccomp profile", f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise SpecError("seccomp profile", "not a JSON object")
    held, arches = set(caps), _GOARCH.get(_native.AUDIT_ARCH, ())
    rules = []
    for i, rule in enumerate(raw.get("syscalls") or []):
        if not isinstance(rule, dict):
            raise SpecError(f"seccomp profile: syscalls[{i}]", "not an object")
        inc, exc = rule.pop("includes", None) or {}, rule.pop("excludes", None) or {}
        if any(c not in held for c in inc.get("caps") or []):
            continue
        if inc.get("arches") and not set(inc["arches"]) & set(arches):
            continue
        if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]):
            continue
        if any(c in held for c in exc.get("caps") or []):
            continue
        if set(exc.get("arches") or []) & set(arches):
            continue
        if exc.get("minKernel") and _kernel_at_least(exc["minKernel"]):
            continue
        if "name" in rule:  # Docker's older single-name form
            rule.setdefault("names", [rule.pop("name")])
        rules.append(rule)
    raw["syscalls"] = rules
    raw.pop("archMap", None)  # this build knows its own architecture only
    try:
        return msgspec.convert(raw, oci.Seccomp)
    except msgspec.ValidationError as e:
        raise SpecError("seccomp profile", str(e)) from None


# -- the default profile ---------------------------------------------------------------

# What Docker's default profile keeps from a container, by the capability whose
# grant would allow it (None: never allowed). From moby's profiles/seccomp
# (default.json) as of Docker 25, written out by name.
_DENIED: dict[str | None, tuple[str, ...]] = {
    None: (
        "add_key",
        "keyctl",
        "request_key",  # the kernel keyring is not namespaced
        "userfaultfd",
        "uselib",
        "ustat",
        "sysfs",
        "_sysctl",
        "nfsservctl",
        "get_kernel_syms",
        "query_module",
        "create_module",
        "vm86",
        "vm86old",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "kexec_load",
        "kexec_file_load",
    ),
    "CAP_SYS_ADMIN": (
        "bpf",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "mount",
        "mount_setattr",
        "move_mount",
        "open_tree",
        "perf_event_open",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "umount",
        "umount2",
        "unshare",
        "pivot_root",
        "swapon",
        "swapoff",
        "name_to_handle_at",
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "process_madvise", "process_vm_readv", "process_vm_writev"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_adjtime"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "move_pages"),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYSLOG": ("syslog",),
}
# clone with any namespace flag, unless CAP_SYS_ADMIN: CLONE_NEWNS|NEWUTS|NEWIPC|
# NEWUSER|NEWPID|NEWNET|NEWCGROUP (0x7E020000), as Docker's profile masks it.
_CLONE_NS_FLAGS = 0x7E020000
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # Linux, its 32-bit, UNAME26, query


def default_profile(caps: Iterable[str] = ()) -> oci.Seccomp:
    """Docker's default profile in effect, for a container holding `caps`."""
    from protocols import oci

    held = set(caps)
    denied = {n for cap, names in _DENIED.items() if cap not in held for n in names}
    special = {"clone", "clone3", "personality"}
    allowed = sorted(n for n in _native.SYSCALLS if n not in denied and n not in special)
    rules = [
        oci.SeccompSyscall(names=allowed, action="SCMP_ACT_ALLOW"),
        oci.SeccompSyscall(names=["clone3"], action="SCMP_ACT_ERRNO", errno_ret=errno.ENOSYS),
    ]
    rules += [
        oci.SeccompSyscall(
            names=["personality"],
            action="SCMP_ACT_ALLOW",
            args=[oci.SeccompArg(index=0, value=v, op="SCMP_CMP_EQ")],
        )
        for v in _PERSONALITIES
    ]
    if "CAP_SYS_ADMIN" in held:
        rules.append(oci.SeccompSyscall(names=["clone"], action="SCMP_ACT_ALLOW"))
    else:
        rules.append(
            oci.SeccompSyscall(
                names=["clone"],
                action="SCMP_ACT_ALLOW",
                args=[
                    oci.SeccompArg(
                        index=0, value=_CLONE_NS_FLAGS, value_two=0, op="SCMP_CMP_MASKED_EQ"
                    )
                ],
            )
        )
    return oci.Seccomp(
        default_action="SCMP_ACT_ERRNO",
        default_errno_ret=errno.EPERM,
        architectures=[_ARCH_NAMES[_native.AUDIT_ARCH]],
        syscalls=rules,
    )
