"""dnp3py (pure-Python DNP3) master, address 1, against the outstation 10 on 127.0.0.1:PORT.

A second, independent encoder for the master side: link reset, disable unsolicited, integrity and
class polls, a range read, CROB direct operate and select/operate, an analog direct operate, delay
measurement, enable unsolicited, then it listens for unsolicited responses and confirms them.
"""

from __future__ import annotations

import asyncio
import sys

from dnp3.master import DefaultSOEHandler, Master, MasterConfig, MasterTcpRunner
from dnp3.master.commands import CommandBuilder

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


async def step(name: str, coroutine: object) -> None:
    try:
        result = await coroutine  # type: ignore[misc]
        print("OK  ", name, str(result)[:120], flush=True)
    except Exception as exc:  # one refused step must not end the session
        print("FAIL", name, type(exc).__name__, str(exc)[:160], flush=True)


async def main() -> None:
    handler = DefaultSOEHandler()
    master = Master(handler=handler, config=MasterConfig(address=1, outstation_address=10))
    async with MasterTcpRunner(master=master, host="127.0.0.1", port=PORT, response_timeout=3) as runner:
        await step("disable unsolicited", runner.disable_unsolicited())
        await step("integrity poll", runner.integrity_poll())
        await step("class poll", runner.class_poll())
        await step("range poll g30v1 0-3", runner.request(master.build_range_poll(30, 1, 0, 3)))
        await step(
            "direct operate CROB latch on 0",
            runner.request(master.build_direct_operate(CommandBuilder().latch_on(0).build_direct_operate())),
        )
        pulse = CommandBuilder().pulse_on(1, on_time=250)
        await step("select CROB pulse on 1", runner.request(master.build_select(pulse.build_select())))
        await step("operate CROB pulse on 1", runner.request(master.build_operate(pulse.build_operate())))
        await step(
            "direct operate analog 2",
            runner.request(
                master.build_direct_operate(CommandBuilder().add_analog(2, 55.5).build_direct_operate())
            ),
        )
        await step("delay measurement", runner.request(master.build_delay_measure()))
        await step("enable unsolicited", runner.enable_unsolicited())
        for _ in range(3):
            await step("listen unsolicited", runner.listen_unsolicited(timeout=4))


asyncio.run(main())
