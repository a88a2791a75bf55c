"""dnp3py (pure-Python DNP3) outstation, address 10, on 127.0.0.1:PORT; accepts every control.

A second, independent encoder for the outstation side (its own event variations, unsolicited
responses with confirms).  Runs for RUN_S seconds, changing two points every 3 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from dnp3.database import AnalogInputConfig, BinaryInputConfig, Database
from dnp3.outstation import Outstation, OutstationConfig, OutstationTcpRunner
from dnp3.outstation.handler import CommandResult, DefaultCommandHandler

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


class Accept(DefaultCommandHandler):
    def select_binary_output(self, *args: object, **kwargs: object) -> CommandResult:
        return CommandResult.success()

    def operate_binary_output(self, *args: object, **kwargs: object) -> CommandResult:
        return CommandResult.success()

    def direct_operate_binary_output(self, *args: object, **kwargs: object) -> CommandResult:
        return CommandResult.success()

    def select_analog_output(self, *args: object, **kwargs: object) -> CommandResult:
        return CommandResult.success()

    def operate_analog_output(self, *args: object, **kwargs: object) -> CommandResult:
        return CommandResult.success()

    def direct_operate_analog_output(self, *args: object, **kwargs: object) -> CommandResult:
        return CommandResult.success()

    def cold_restart(self) -> int:
        return 2000

    def warm_restart(self) -> int:
        return 1000


async def main() -> None:
    database = Database()
    for index in range(10):
        database.add_binary_input(index, BinaryInputConfig())
        database.add_analog_input(index, AnalogInputConfig())
        database.add_binary_output(index)
        database.add_analog_output(index)
        database.add_counter(index)
    database.update_binary_input(0, value=True)
    database.update_analog_input(1, value=42)
    outstation = Outstation(
        database=database, config=OutstationConfig(address=10, master_address=1), handler=Accept()
    )
    runner = OutstationTcpRunner(outstation=outstation, host="127.0.0.1", port=PORT)
    task = asyncio.create_task(runner.run())
    for step in range(int(os.environ.get("RUN_S", "40")) // 3):
        await asyncio.sleep(3)
        database.update_binary_input(0, value=bool(step % 2))
        database.update_analog_input(1, value=10 * step)
        with contextlib.suppress(Exception):
            outstation.generate_unsolicited()
    await runner.stop()
    task.cancel()


asyncio.run(main())
