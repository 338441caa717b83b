"""Outbound traffic for bridge networks: masquerade and forwarding rules in an
nftables table of Corral's own, through libnftables' JSON API (Debian's
python3-nftables), never by running `nft` or `iptables`.

The facts this relies on:
- A container's packets to the outside leave through the host's routing: the
  bridge must forward (net.ipv4.conf.BRIDGE.forwarding=1, and ip_forward), and
  their source must be rewritten to the host's address on the way out
  (masquerade), or the outside's answers have no way back.
- Routed traffic between two of Corral's bridges would then cross networks:
  the forward chain drops what comes in on one of them and goes out on
  another (networks stay isolated, as they were with forwarding off). With
  br_netfilter loaded (Docker loads it), traffic bridged within one network
  passes the hook too, in and out of the same bridge: that is let through.
- An nftables transaction is atomic: the whole table is replaced in one
  (`delete table` + `add table` + chains + rules), so a reader never sees
  half a ruleset, and there is no state to reconcile rule by rule.
- Base chains of every table see a packet: another table's drop (Docker's
  iptables FORWARD policy DROP, say) still drops it. Corral's accepts cannot
  undo another engine's policy; it says so in docs/network.md.

Each daemon has its own table (`corral`, or `corral_<hash of its root>` for a
daemon with another root, as the tests run), recreated at start and rewritten
whenever a network comes or goes; with no network left, the table goes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import structlog

from supervisor.errors import NetworkError

log = structlog.get_logger("corral.nat")

DEFAULT_ROOT = "/var/lib/corral"


@dataclass(frozen=True)
class Bridge:
    name: str  # the bridge device
    subnet: str  # CIDR


def table_name(root: str) -> str:
    if root.rstrip("/") == DEFAULT_ROOT:
        return "corral"
    return "corral_" + hashlib.sha256(root.encode()).hexdigest()[:10]


def _library():
    """libnftables through python3-nftables; None where it is not installed."""
    try:
        import nftables  # Debian's python3-nftables (scripts/install.sh links it in)
    except ImportError:
        return None
    try:
        nft = nftables.Nftables()
    except OSError:  # the module without libnftables.so
        return None
    nft.set_json_output(True)
    nft.set_handle_output(False)
    return nft


class Nat:
    def __init__(self, root: str) -> None:
        self.table = table_name(root)
        self.nft = _library()

    @property
    def available(self) -> bool:
        return self.nft is not None

    def _run(self, commands: list[dict]) -> None:
        assert self.nft is not None
        rc, _out, err = self.nft.json_cmd({"nftables": commands})
        if rc != 0:
            raise NetworkError(f"nftables: table inet {self.table}: {err.strip()}")

    def _exists(self) -> bool:
        assert self.nft is not None
        rc, out, _err = self.nft.json_cmd({"nftables": [{"list": {"tables": {"family": "inet"}}}]})
        if rc != 0:
            return False
        return any(
            item.get("table", {}).get("name") == self.table for item in out.get("nftables", [])
        )

    def sync(self, bridges: list[Bridge]) -> None:
        """The table for exactly these bridges (none: no table). NetworkError
        names what libnftables refused."""
        if self.nft is None:
            return
        t = {"family": "inet", "table": self.table}
        cmds: list[dict] = []
        if self._exists():
            cmds.append({"delete": {"table": {"family": "inet", "name": self.table}}})
        if bridges:
            names = sorted(b.name for b in bridges)
            cmds += [
                {"add": {"table": {"family": "inet", "name": self.table}}},
                {"add": {"set": {**t, "name": "bridges", "type": "ifname", "elem": names}}},
                {
                    "add": {
                        "chain": {
                            **t,
                            "name": "postrouting",
                            "type": "nat",
                            "hook": "postrouting",
                            "prio": 100,
                            "policy": "accept",
                        }
                    }
                },
                {
                    "add": {
                        "chain": {
                            **t,
                            "name": "forward",
                            "type": "filter",
                            "hook": "forward",
                            "prio": 0,
                            "policy": "accept",
                        }
                    }
                },
            ]
            for b in sorted(bridges, key=lambda b: b.name):
                # From this bridge to another of ours: never (the networks'
                # isolation). Within one bridge is fine: with br_netfilter loaded,
                # bridged packets pass this hook too, in and out the same bridge.
                cmds.append(
                    _rule(
                        t,
                        "forward",
                        [
                            _meta("iifname", "==", b.name),
                            _meta("oifname", "!=", b.name),
                            _meta("oifname", "==", "@bridges"),
                            _DROP,
                        ],
                    )
                )
                addr, _, prefix = b.subnet.partition("/")
                net = {"prefix": {"addr": addr, "len": int(prefix or 32)}}
                cmds.append(
                    _rule(
                        t,
                        "postrouting",
                        [
                            {
                                "match": {
                                    "op": "==",
                                    "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                    "right": net,
                                }
                            },
                            {
                                "match": {
                                    "op": "!=",
                                    "left": {"meta": {"key": "oifname"}},
                                    "right": b.name,
                                }
                            },
                            {"masquerade": None},
                        ],
                    )
                )
        if cmds:
            self._run(cmds)

    def remove(self) -> None:
        self.sync([])


_SADDR = {"payload": {"protocol": "ip", "field": "saddr"}}
_DROP = {"drop": None}


def _meta(key: str, op: str, right: str) -> dict:
    return {"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}}


def _rule(t: dict, chain: str, expr: list[dict]) -> dict:
    return {"add": {"rule": {**t, "chain": chain, "expr": expr}}}


def set_forwarding(bridge: str, on: bool) -> None:
    """The bridge routes to the rest of the host (on) or nowhere (off)."""
    with open(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding", "w") as f:
        f.write("1" if on else "0")
    if on:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() != "1":  # loop-safe: a /proc/sys file of one byte
                log.info("nat.ip_forward_enabled")  # Docker turns it on too
                with open("/proc/sys/net/ipv4/ip_forward", "w") as w:
                    w.write("1")
