# ruff: noqa: N802 - the binding calls these methods by their C++ names
"""rtu1: a yadnp3 (opendnp3) DNP3 outstation, link address 10, at the remote reservoir.

Listens on TCP 20000 and accepts one master (address 1) at a time: a new connection closes the
existing one (``ServerAcceptMode.CloseExisting``), as many single-session RTUs do, so the
attacker's master takes the channel away from the HMI until the HMI reconnects.  Unsolicited
responses are allowed; the master enables them.

Points (4 of each type; values are integers in engineering units, so the default g30v1/g32v1
variations carry them without rounding):

    analog 0  reservoir level   cm         420 +- 30  (sine over 40 updates)
    analog 1  inflow            0.1 l/s    520 +- 40
    analog 2  chlorine residual 0.01 mg/l   45 +- 3
    analog 3  battery voltage   0.1 V      136
    binary 0  pump running (level > 430 cm), 1 high level alarm, 2 door open, 3 mains ok
    counter 0 inflow totaliser  m3         +5 per update
    double-bit 0 incomer breaker closed; binary/analog output status 0: pump command, setpoint

The measurements change at every RTU update tick of ``plant.py`` (every 2 ticks at +0.70), which
the outstation reports as unsolicited events.  Time-and-interval and octet-string points are
left out (Wireshark 4.0 cannot parse g50v4 in a class-0 response).  The IIN "need time" bit is
never set and events carry no time, so the content does not depend on the clock.  A cold or warm
restart request is answered with its delay (10 s / 5 s); the RTU does not really restart.
Prints ``READY``; stops on SIGTERM after the given number of ticks.  Must not write any file.

usage: rtu_dnp3.py BIND_ADDRESS EPOCH
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from pathlib import Path

import opendnp3 as o

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plant
from plant import at, sleep_until, ticks

POINTS = 4


def say(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), "rtu1", *args, flush=True)


class Listener(o.IChannelListener):
    def OnStateChange(self, state: object) -> None:
        say("channel", state)


class Commands(o.ICommandHandler):
    """The RTU takes no controls in this demo: every select/operate is refused."""

    def Begin(self) -> None:
        pass

    def End(self) -> None:
        pass

    def Select(self, *args: object) -> object:
        return o.CommandStatus.NOT_SUPPORTED

    def Operate(self, *args: object) -> object:
        return o.CommandStatus.NOT_SUPPORTED


class Application(o.IOutstationApplication):
    def SupportsWriteAbsoluteTime(self) -> bool:
        return False

    def SupportsWriteTimeAndInterval(self) -> bool:
        return False

    def SupportsAssignClass(self) -> bool:
        return False

    def ColdRestartSupport(self) -> object:
        return o.RestartMode.SUPPORTED_DELAY_FINE

    def WarmRestartSupport(self) -> object:
        return o.RestartMode.SUPPORTED_DELAY_FINE

    def ColdRestart(self) -> int:
        say("COLD RESTART requested")
        return 10000

    def WarmRestart(self) -> int:
        say("WARM RESTART requested")
        return 5000

    def GetApplicationIIN(self) -> object:
        return o.ApplicationIIN()  # never "need time": no time sync traffic

    def Now(self) -> object:
        return o.DNPTime(int(time.time() * 1000))

    def OnConfirmProcessed(self, *args: object) -> None:
        pass


def measurements(update: int) -> object:
    """The point values after ``update`` RTU updates (a pure function of the count)."""
    phase = 2 * math.pi * update / 40
    level = 420 + round(30 * math.sin(phase))
    builder = o.UpdateBuilder()
    builder.Update(o.Analog(float(level)), 0)
    builder.Update(o.Analog(float(520 + round(40 * math.sin(phase + 1.3)))), 1)
    builder.Update(o.Analog(float(45 + round(3 * math.sin(phase * 2)))), 2)
    builder.Update(o.Analog(136.0), 3)
    builder.Update(o.Binary(level > 430), 0)
    builder.Update(o.Binary(False), 1)
    builder.Update(o.Binary(False), 2)
    builder.Update(o.Binary(True), 3)
    builder.Update(o.Counter(81250 + 5 * update), 0)
    builder.Update(o.DoubleBitBinary(o.DoubleBit.DETERMINED_ON), 0)
    builder.Update(o.BinaryOutputStatus(level > 430), 0)
    builder.Update(o.AnalogOutputStatus(450.0), 0)
    return builder.Build()


def main() -> None:
    bind, epoch = sys.argv[1], float(sys.argv[2])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    manager = o.DNP3Manager(1)
    channel = manager.AddTCPServer(
        "rtu1",
        o.levels.NORMAL,
        o.ServerAcceptMode.CloseExisting,
        o.IPEndpoint(bind, plant.DNP3_PORT),
        Listener(),
    )
    database = o.DatabaseConfig(POINTS)
    database.time_and_interval = {}
    database.octet_string = {}
    config = o.OutstationStackConfig(database)
    config.outstation.eventBufferConfig = o.EventBufferConfig.AllTypes(100)
    config.outstation.params.allowUnsolicited = True
    config.link.LocalAddr = plant.DNP3_OUTSTATION_ADDRESS
    config.link.RemoteAddr = plant.DNP3_MASTER_ADDRESS
    outstation = channel.AddOutstation("rtu1", Commands(), Application(), config)
    outstation.Apply(measurements(0))
    outstation.Enable()
    print(f"READY dnp3 {bind}:{plant.DNP3_PORT}", flush=True)
    total = plant.NORMAL_TICKS + plant.ATTACK_TICKS
    for update, tick in enumerate(ticks(total, plant.RTU_UPDATE_EVERY), start=1):
        sleep_until(at(epoch, tick, "rtu_update"))
        if stop.is_set():
            break
        outstation.Apply(measurements(update))
    stop.wait()
    manager.Shutdown()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    main()
