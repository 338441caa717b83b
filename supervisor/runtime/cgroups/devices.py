"""Device rules on cgroup v2: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
attached to the container's cgroup, doing what v1's devices.allow/deny do.

The kernel calls it on every open and mknod of a device node with the type,
the access asked for, and the major and minor. The program checks the rules
from the last to the first and answers with the first that matches (a later
rule overrides an earlier one, as in v1's list); none: refused.
"""

from __future__ import annotations

import os
import struct

from supervisor import _native
from supervisor.errors import CgroupError
from supervisor.runtime.cgroups.base import DeviceRule

# linux/bpf.h: kernel ABI.
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W:  dst = *(u32 *)(src + off)
_AND_K = 0x57  # BPF_ALU64 | BPF_AND | BPF_K
_RSH_K = 0x77  # BPF_ALU64 | BPF_RSH | BPF_K
_MOV_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
_MOV_X = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K:  if dst != imm: pc += off
_EXIT = 0x95
_TYPES = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, _CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(rules: tuple[DeviceRule, ...]) -> bytes:
    """The eBPF program for `rules` (struct bpf_cgroup_dev_ctx in r1)."""
    out = [
        _insn(_LDX_W, 2, 1, 0),  # r2 = access_type
        _insn(_AND_K, 2, imm=0xFFFF),  # r2 = type
        _insn(_LDX_W, 3, 1, 0),
        _insn(_RSH_K, 3, imm=16),  # r3 = access
        _insn(_LDX_W, 4, 1, 4),  # r4 = major
        _insn(_LDX_W, 5, 1, 8),  # r5 = minor
    ]
    for rule in reversed(rules):
        block: list[bytes | tuple[int, int]] = []  # jne placeholders: (reg, imm)
        if rule.type != "a":
            block.append((2, _TYPES[rule.type]))
        acc = sum(_ACCESS[c] for c in set(rule.access))
        if acc != 7:  # the access asked for must be within the rule's
            block.append(_insn(_MOV_X, 1, 3))
            block.append(_insn(_AND_K, 1, imm=~acc & 7))
            block.append((1, 0))
        if rule.major is not None:
            block.append((4, rule.major))
        if rule.minor is not None:
            block.append((5, rule.minor))
        block.append(_insn(_MOV_K, 0, imm=1 if rule.allow else 0))
        block.append(_insn(_EXIT))
        if len(block) == 2:  # it matches everything: what is after it never runs,
            out += block  # and the verifier refuses code that cannot run
            return b"".join(out)
        for i, item in enumerate(block):
            if isinstance(item, tuple):  # skip the rest of the block: the next rule
                reg, imm = item
                out.append(_insn(_JNE_K, reg, off=len(block) - i - 1, imm=imm))
            else:
                out.append(item)
    out += [_insn(_MOV_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(out)


def attach(cgroup_dir: str, rules: tuple[DeviceRule, ...]) -> None:
    """Make `rules` the device rules of the cgroup v2 directory."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _native.bpf_device_attach(program(rules), fd)
    except OSError as e:
        what = f"device rules ({e.strerror}) could not be attached to"
        raise CgroupError(os.fspath(cgroup_dir), e.errno or 0, what) from None
    finally:
        os.close(fd)
