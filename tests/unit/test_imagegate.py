"""The image gate: additions run together; a removal runs alone."""

import trio
import trio.testing

from supervisor.daemon.imagegate import ImageGate


async def test_a_removal_waits_for_additions_and_holds_new_ones_off() -> None:
    gate = ImageGate()
    log: list[str] = []
    release = trio.Event()

    async def add(name: str) -> None:
        async with gate.adding():
            log.append(f"{name} in")
            await release.wait()
            log.append(f"{name} out")

    async def remove() -> None:
        async with gate.removing():
            log.append("remove")
            await trio.sleep(0)

    async with trio.open_nursery() as n:
        n.start_soon(add, "a")
        n.start_soon(add, "b")
        await trio.testing.wait_all_tasks_blocked()
        n.start_soon(remove)
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(log) == ["a in", "b in"]  # two additions together; the removal waits
        release.set()
    assert log[-1] == "remove"


async def test_an_addition_waits_for_a_removal() -> None:
    gate = ImageGate()
    log: list[str] = []
    release = trio.Event()

    async def remove() -> None:
        async with gate.removing():
            log.append("remove in")
            await release.wait()
            log.append("remove out")

    async def add() -> None:
        async with gate.adding():
            log.append("add")

    async with trio.open_nursery() as n:
        n.start_soon(remove)
        await trio.testing.wait_all_tasks_blocked()
        n.start_soon(add)
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["remove in"]
        release.set()
    assert log == ["remove in", "remove out", "add"]
