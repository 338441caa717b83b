"""`--user` resolved the way Docker does: names looked up in the container's
own /etc/passwd and /etc/group (read inside its root, never following a
symlink out of it), numbers taken as they are."""

from __future__ import annotations

import os

from supervisor.errors import SpecError


def _read(root: str, path: str) -> str:
    from supervisor import _native  # lazily: the daemon's pure paths import this module

    try:
        fd = _native.open_in_root(root, path)
    except OSError:
        return ""
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        return f.read()


def parse_passwd(text: str) -> dict[str, tuple[int, int]]:
    out = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
            out[parts[0]] = (int(parts[2]), int(parts[3]))
    return out


def parse_group(text: str) -> tuple[dict[str, int], dict[str, list[int]]]:
    """(group name -> gid, user name -> gids of the groups listing them)."""
    gids, members = {}, {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            gid = int(parts[2])
            gids[parts[0]] = gid
            for user in filter(None, parts[3].split(",") if len(parts) > 3 else []):
                members.setdefault(user, []).append(gid)
    return gids, members


def resolve(user: str, root: str) -> tuple[int, int, list[int]]:
    """'' | 'name' | 'uid' | 'name:group' | 'uid:gid' -> (uid, gid, extra gids).

    Raises SpecError naming --user when a name is not found."""
    if not user:
        user = "0"
    name, _, group = user.partition(":")
    passwd = parse_passwd(_read(root, "/etc/passwd"))
    gids, members = parse_group(_read(root, "/etc/group"))
    if name.isdigit():
        uid = int(name)
        gid = next((g for u, g in passwd.values() if u == uid), 0)
        username = next((n for n, (u, _) in passwd.items() if u == uid), None)
    elif name in passwd:
        uid, gid = passwd[name]
        username = name
    else:
        raise SpecError("--user", f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        elif group in gids:
            gid = gids[group]
        else:
            raise SpecError(
                "--user", f"unable to find group {group}: no matching entries in group file"
            )
    extra = sorted(set(members.get(username, []))) if username else []
    return uid, gid, extra


def group_gids(groups: list[str], root: str) -> list[int]:
    """--group-add: names looked up in the container's /etc/group, numbers as they
    are. Raises SpecError naming --group-add for an unknown name."""
    if not groups:
        return []
    gids, _ = parse_group(_read(root, "/etc/group"))
    out = []
    for g in groups:
        if g.isdigit():
            out.append(int(g))
        elif g in gids:
            out.append(gids[g])
        else:
            raise SpecError(
                "--group-add", f"unable to find group {g}: no matching entries in group file"
            )
    return out
