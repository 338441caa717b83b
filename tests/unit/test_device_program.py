"""The v2 device program, run by a small interpreter of the eBPF it uses (the
kernel runs it in tests/integration/test_cgroups.py)."""

import struct

import pytest

# What this tests lives in the C core (its constants, its checks).
pytest.importorskip(
    "supervisor._corral_native", reason="the C core is not built (bash scripts/install.sh)"
)

from supervisor.runtime.cgroups import DeviceRule
from supervisor.runtime.cgroups.devices import program
from supervisor.runtime.plan import ALLOWED_DEVICES

TYPES = {"b": 1, "c": 2}
ACC = {"m": 1, "r": 2, "w": 4}


def run(prog: bytes, typ: str, major: int, minor: int, access: str) -> bool:
    ctx = struct.pack("<III", (sum(ACC[a] for a in access) << 16) | TYPES[typ], major, minor)
    regs = [0] * 11
    insns = [struct.unpack_from("<BBhi", prog, i) for i in range(0, len(prog), 8)]
    pc = 0
    while True:
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == 0x61:
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x57:
            regs[dst] &= imm & 0xFFFFFFFFFFFFFFFF
        elif code == 0x77:
            regs[dst] >>= imm
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0xBF:
            regs[dst] = regs[src]
        elif code == 0x55:
            if regs[dst] != imm:
                pc += off
        elif code == 0x95:
            return bool(regs[0])
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


DOCKER = (DeviceRule(False), *ALLOWED_DEVICES)


@pytest.mark.parametrize(
    ("typ", "major", "minor", "access", "allowed"),
    [
        ("c", 1, 3, "rw", True),  # /dev/null
        ("c", 136, 7, "rw", True),  # a pty
        ("b", 8, 0, "m", True),  # mknod of a disk's node
        ("b", 8, 0, "r", False),  # but not reading it
        ("c", 10, 237, "r", False),  # loop-control
        ("c", 1, 3, "m", True),
    ],
)
def test_docker_rules(typ, major, minor, access, allowed):
    assert run(program(DOCKER), typ, major, minor, access) is allowed


def test_later_rules_win_and_match_when_the_access_fits():
    """As runc's device filter: a rule matches an access within its own."""
    rules = (DeviceRule(True), DeviceRule(False, "c", 10, None, "w"))
    assert run(program(rules), "c", 10, 237, "r")
    assert not run(program(rules), "c", 10, 237, "w")
    assert run(program(rules), "b", 10, 1, "w")
    assert not run(program((DeviceRule(False), DeviceRule(True, "c", 1, 3, "r"))), "c", 1, 3, "rw")
