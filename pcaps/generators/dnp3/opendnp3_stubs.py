# ruff: noqa: N802 - the binding calls these methods by their C++ names
"""Do-nothing opendnp3 (yadnp3) callbacks for the DNP3 capture generators' stacks.

The stacks need a listener, a command handler, outstation and master applications and a
measurement handler; the captures need none of them to do anything (commands refused, values
ignored).  Importing this module imports the binding.
"""

from __future__ import annotations

import time

import opendnp3 as o


class Listener(o.IChannelListener):
    def OnStateChange(self, state: object) -> None:
        pass


class Commands(o.ICommandHandler):
    def Begin(self) -> None:
        pass

    def End(self) -> None:
        pass

    def Select(self, *args: object) -> object:
        return o.CommandStatus.NOT_SUPPORTED

    def Operate(self, *args: object) -> object:
        return o.CommandStatus.NOT_SUPPORTED


class Application(o.IOutstationApplication):
    def Now(self) -> object:
        return o.DNPTime(int(time.time() * 1000))

    def OnConfirmProcessed(self, *args: object) -> None:
        pass


class Handler(o.ISOEHandler):
    def BeginFragment(self, info: object) -> None:
        pass

    def EndFragment(self, info: object) -> None:
        pass

    def Process(self, info: object, values: object) -> None:
        pass


class MasterApplication(o.IMasterApplication):
    def OnOpen(self) -> None:
        pass

    def OnClose(self) -> None:
        pass

    def OnReceiveIIN(self, iin: object) -> None:
        pass

    def OnTaskStart(self, task: object, identifier: object) -> None:
        pass

    def OnTaskComplete(self, info: object) -> None:
        pass

    def AssignClassDuringStartup(self) -> bool:
        return False

    def Now(self) -> object:
        return o.UTCTimestamp(int(time.time() * 1000))
