"""The client's image commands: pull, push, login, import, load, save, images,
tag, rmi, history, image."""

from __future__ import annotations

import os
import sys

from protocols import lite
from protocols.lite import api
from supervisor.client.connection import Client, DaemonError, UsageError, confirm
from supervisor.client.format import ago, short_size, templated
from supervisor.client.tables import columns


def progress(c: Client, req, out=None, quiet: bool = False) -> object:
    """Docker's per-layer progress (to `out`, stdout by default; none when
    `quiet`), then the result. On a terminal, a line per layer, redrawn in place
    with its bar; elsewhere, each layer's steps, without the byte counts."""
    out = out or sys.stdout
    board = Board() if out.isatty() else None
    c.send(req)
    while True:
        msg = c.recv()
        if not isinstance(msg, api.Progress):
            return msg
        if quiet:
            continue
        if board is not None:
            out.write(board.update(msg.id, progress_text(msg.status, msg.current, msg.total)))
            out.flush()
        elif msg.status not in ("Downloading", "Pushing") or not msg.total:
            print(f"{msg.id}: {msg.status}", flush=True, file=out)


def progress_text(status: str, current: int, total: int) -> str:
    """'Downloading [=====>      ]  12.3MB/52.4MB', as Docker draws it."""
    if status not in ("Downloading", "Pushing") or not total:
        return status
    filled = min(50, 50 * current // total)
    bar = ("=" * (filled - 1) + ">" if filled else "").ljust(50)
    return f"{status} [{bar}]  {short_size(current)}/{short_size(total)}"


class Board:
    """A line per id, in the order ids first came, each rewritten in place
    (cursor up to it, clear it, back down), as Docker's pull output does."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def update(self, id: str, text: str) -> str:
        if id not in self.ids:
            self.ids.append(id)
            return f"{id}: {text}\n"
        up = len(self.ids) - self.ids.index(id)
        return f"\x1b[{up}A\x1b[2K\r{id}: {text}\x1b[{up}B\r"


def cmd_pull(c: Client, args) -> int:
    req = api.ImagePull(ref=args.ref, platform=args.platform, insecure=args.insecure)
    done = progress(c, req, quiet=args.quiet)
    name = done.tags[0] if done.tags else args.ref
    if args.quiet:  # Docker's -q: the name only
        print(name)
        return 0
    if done.deleted:
        print(f"Status: Image is up to date for {name}")
    else:
        print(f"Status: Downloaded newer image for {name}")
    print(f"Digest: {done.digest or done.ids[0]}")
    return 0


def cmd_push(c: Client, args) -> int:
    done = progress(c, api.ImagePush(ref=args.ref, insecure=args.insecure))
    print(f"{args.ref}: digest: {done.ids[0]}")
    return 0


def cmd_login(c: Client, args) -> int:
    password = sys.stdin.read().strip() if args.password_stdin else args.password
    if password is None:
        import getpass

        password = getpass.getpass("Password: ")
    c.call(api.Login(registry=args.registry, username=args.username, password=password))
    print("Login Succeeded")
    return 0


def cmd_logout(c: Client, args) -> int:
    c.call(api.Logout(registry=args.registry))
    print(f"Removing login credentials for {args.registry}")
    return 0


def cmd_import(c: Client, args) -> int:
    done = c.call(api.ImageImport(path=os.path.abspath(args.file), ref=args.ref))
    print(done.ids[0])
    return 0


def cmd_load(c: Client, args) -> int:
    if args.input:
        done = c.call(api.ImageLoad(path=os.path.abspath(args.input)))
    else:  # docker load < archive.tar: the archive goes over the socket
        c.send(api.ImageLoad(path=""))
        while chunk := sys.stdin.buffer.read(1 << 20):
            c.send(api.StdinData(data=chunk))
        c.send(api.StdinClose())
        done = c.recv()
    for t in done.tags:
        print(f"Loaded image: {t}")
    for i in done.ids if not done.tags else []:
        print(f"Loaded image ID: {i}")
    return 0


def cmd_save(c: Client, args) -> int:
    if args.output:
        c.call(api.ImageSave(ref=args.image, path=os.path.abspath(args.output)))
        return 0
    if sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal: use -o or redirect")
    for msg in c.stream(api.ImageSave(ref=args.image, path="")):
        sys.stdout.buffer.write(msg.data)
    sys.stdout.buffer.flush()
    return 0


def cmd_images(c: Client, args) -> int:
    from supervisor.client.flags import parse_filters

    images = c.call(api.ImageList(filters=parse_filters(args.filter))).images
    if args.quiet:
        for im in images:
            print(im.id.removeprefix("sha256:")[:12])
        return 0
    if args.format == "json":
        for im in images:
            print(lite.to_json(im))
        return 0
    if args.format != "table":
        rows = [
            {
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "ID": im.id.removeprefix("sha256:")[:12],
                "CreatedAt": im.created,
                "CreatedSince": _created_ago(im.created),
                "Size": short_size(im.size),
            }
            for im in images
            for repo, tag, digest in _image_rows(im)
        ]
        headers = {".Repository": "REPOSITORY", ".Tag": "TAG", ".ID": "IMAGE ID"}
        headers |= {".Digest": "DIGEST", ".CreatedAt": "CREATED AT", ".CreatedSince": "CREATED"}
        templated(args.format, rows, {**headers, ".Size": "SIZE"})
        return 0

    head = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID"]
    table = [[*head, "CREATED", "SIZE"]]
    for im in images:
        hexid = im.id.removeprefix("sha256:")[:12]
        for repo, tag, digest in _image_rows(im):
            extra = [digest] if args.digests else []
            ago, size = _created_ago(im.created), short_size(im.size)
            table.append([repo, tag, *extra, hexid, ago, size])
    print("\n".join(columns(table)))
    return 0


def _image_rows(im) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) rows of an image, as Docker lists them: one per
    tag; one per pinned repository for an image pulled by digest only."""
    pinned = dict(d.partition("@")[::2] for d in im.digests)
    rows = []
    for t in im.tags:
        repo, _, tag = t.rpartition(":")
        rows.append((repo, tag, pinned.get(repo, "<none>")))
    if not rows:
        rows = [(repo, "<none>", digest) for repo, digest in pinned.items()]
    return rows or [("<none>", "<none>", "<none>")]


def _created_ago(rfc3339: str) -> str:
    """An image config's `created` as Docker's CREATED column shows it."""
    import datetime

    try:
        when = datetime.datetime.fromisoformat(rfc3339)
    except ValueError:
        return "N/A"
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return ago(int(when.timestamp() * 1e9))


def cmd_commit(c: Client, args) -> int:
    req = api.ImageCommit(
        id=args.container, ref=args.ref, message=args.message, author=args.author, pause=args.pause
    )
    req = lite.replace(req, changes=args.change)
    print(c.call(req).ids[0])
    return 0


def cmd_tag(c: Client, args) -> int:
    c.call(api.ImageTag(source=args.source, target=args.target))
    return 0


def cmd_rmi(c: Client, args) -> int:
    rc = 0
    for ref in args.images:
        try:
            done = c.call(api.ImageRemove(ref=ref, force=args.force))
        except DaemonError as e:
            print(f"corral: Error response from daemon: {e}", file=sys.stderr)
            rc = 1
            continue
        for t in done.tags:
            print(f"Untagged: {t}")
        for i in done.ids if done.deleted else []:
            print(f"Deleted: {i}")
    return rc


def cmd_history(c: Client, args) -> int:
    """Docker's columns, newest first; the image's id on the newest line and
    <missing> on the others, as Docker shows an image it did not build."""

    data = c.call(api.ImageInspect(ref=args.image)).data
    image_id = data["Id"] if args.no_trunc else data["Id"].removeprefix("sha256:")[:12]
    history = list(reversed(data.get("History", []))) or [{}]
    if args.quiet:
        print(image_id)
        return 0
    table = [["IMAGE", "CREATED", "CREATED BY", "COMMENT"]]
    for i, h in enumerate(history):
        by = h.get("created_by", "")
        if not args.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        ago = _created_ago(h.get("created", ""))
        table.append([image_id if i == 0 else "<missing>", ago, by, h.get("comment", "")])
    print("\n".join(columns(table)))
    return 0


def cmd_image(c: Client, args) -> int:
    if args.icmd == "inspect":
        out = [c.call(api.ImageInspect(ref=r)).data for r in args.images]
        if args.format:
            templated(args.format, out, {})
        else:
            print(lite.to_json(out, indent=4))
        return 0
    if args.icmd == "ls":
        return cmd_images(c, args)
    if args.icmd == "rm":
        return cmd_rmi(c, args)
    if args.icmd == "history":
        return cmd_history(c, args)
    what = (
        "This will remove all images without at least one container associated to them."
        if args.all
        else "This will remove all dangling images."
    )
    if not confirm(args, what):
        return 0
    done = c.call(api.ImagePrune(all=args.all))
    if done.ids:  # Docker's report
        print("Deleted Images:")
        for t in done.tags:
            print(f"untagged: {t}")
        for i in [*done.ids, *done.deleted]:
            print(f"deleted: {i}")
        print()
    print(f"Total reclaimed space: {short_size(done.size)}")
    return 0
