"""The daemon's build requests: `build` (the context received as a tar, the
build run by builder.py, its steps relayed as they happen) and `builder
prune`."""

from __future__ import annotations

import os
import secrets
import shutil
import tarfile
import tempfile
from functools import partial
from typing import TYPE_CHECKING

import trio

from protocols import api
from supervisor import fstree
from supervisor.daemon.builder import Builder
from supervisor.errors import BuildError, NoSuchImage

if TYPE_CHECKING:
    from supervisor.daemon.server import Connection


def _unpack_context(spool, dest) -> None:
    spool.seek(0)
    fd = fstree.open_dir(dest)
    try:
        with tarfile.open(fileobj=spool, mode="r|*") as tar:
            fstree.extract_tar(tar, fd)
    except tarfile.TarError as e:
        raise BuildError(f"the build context is not a tar archive: {e}") from None
    finally:
        os.close(fd)


async def build(conn: Connection, req: api.Build, inbox) -> None:
    f = conn.fleet
    work = f.build_dir / secrets.token_hex(6)
    context = work / "context"
    context.mkdir(parents=True, mode=0o700)
    try:
        with tempfile.TemporaryFile(dir=work) as spool:
            await conn.receive_into(inbox, spool)
            await trio.to_thread.run_sync(partial(_unpack_context, spool, context))
        send_ch, recv_ch = trio.open_memory_channel(1024)

        def report(p: api.BuildProgress) -> None:
            try:
                send_ch.send_nowait(p)
            except trio.WouldBlock:
                pass  # a client that does not read loses progress lines, not the build

        async def forward() -> None:
            async for msg in recv_ch:
                await conn.send(msg)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward)
            try:
                result = await Builder(f, req, context, work, report).run()
            finally:
                send_ch.close()
        await conn.send(result)
    finally:
        await trio.to_thread.run_sync(partial(shutil.rmtree, work, ignore_errors=True))


async def prune(conn: Connection, req: api.BuilderPrune, inbox) -> None:
    f = conn.fleet
    st = f.images
    made = f.build_cache.clear()
    removed, size = [], 0
    async with f.image_gate.removing():
        for image_id in sorted(made):
            try:
                if st.tags(image_id) or f.image_users(image_id):
                    continue
                dirs = [st.layers / c.removeprefix("sha256:") for c in st.layers_only_of(image_id)]
                size += await trio.to_thread.run_sync(lambda d=dirs: sum(fstree.du(x) for x in d))
                await trio.to_thread.run_sync(partial(st.remove_image, image_id, set()))
            except NoSuchImage:  # removed meanwhile
                continue
            removed.append(image_id)
    await conn.send(api.PruneResult(removed=removed, reclaimed_bytes=size))


ROUTES = {api.Build: build, api.BuilderPrune: prune}
