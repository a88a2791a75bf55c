# ruff: noqa: N802 - the binding calls these methods by their C++ names
"""A realistic DNP3 session between opendnp3 stacks (yadnp3 binding), over TCP on 127.0.0.1.

ROLE=both (default) runs a master (address 1) and an outstation (address 10) in one process, each
with its own DNP3Manager; ROLE=master or ROLE=outstation runs one side against another stack (the
dnp3py interop captures).  The master walks through the usual life of an association: startup
(disable unsolicited, clear restart, integrity poll, time sync, enable unsolicited), class polls,
unsolicited events with confirms, controls (CROB and analog outputs, direct and select/operate),
freezes, dead-band writes, delay measurement, link status, device attributes, file transfer,
restarts and an unsupported function.  Run by ``generate.py`` under tcpdump; prints a log only.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import opendnp3 as o

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
ROLE = os.environ.get("ROLE", "both")
RUN_SECONDS = float(os.environ.get("RUN_S", "40"))
LOG = o.levels.NORMAL
FILES = {"/data/config.txt": b"line one of the configuration\n" * 12, "/data/log.csv": b"t,v\n1,2\n"}


def say(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


class Listener(o.IChannelListener):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def OnStateChange(self, state: object) -> None:
        say(self.name, "channel", state)


class Commands(o.ICommandHandler):
    """Accepts controls on points 0-7, refuses the rest as an outstation with 8 outputs would."""

    def Begin(self) -> None:
        pass

    def End(self) -> None:
        pass

    def Select(self, *args: object) -> object:
        say("OUTSTATION select", type(args[0]).__name__, args[1])
        return o.CommandStatus.NOT_SUPPORTED if args[1] >= 8 else o.CommandStatus.SUCCESS

    def Operate(self, *args: object) -> object:
        say("OUTSTATION operate", type(args[0]).__name__, args[1])
        return o.CommandStatus.NOT_SUPPORTED if args[1] >= 8 else o.CommandStatus.SUCCESS


class Application(o.IOutstationApplication):
    need_time = True

    def SupportsWriteAbsoluteTime(self) -> bool:
        return True

    def WriteAbsoluteTime(self, timestamp: object) -> bool:
        Application.need_time = False
        return True

    def SupportsWriteTimeAndInterval(self) -> bool:
        return True

    def SupportsAssignClass(self) -> bool:
        return True

    def RecordClassAssignment(self, *args: object) -> None:
        say("OUTSTATION assign class", args)

    def ColdRestartSupport(self) -> object:
        return list(o.RestartMode.__members__.values())[-1]

    def WarmRestartSupport(self) -> object:
        return self.ColdRestartSupport()

    def ColdRestart(self) -> int:
        return 2000

    def WarmRestart(self) -> int:
        return 1000

    def GetApplicationIIN(self) -> object:
        iin = o.ApplicationIIN()
        iin.needTime = Application.need_time
        return iin

    def Now(self) -> object:
        return o.DNPTime(int(time.time() * 1000))

    def OnConfirmProcessed(self, *args: object) -> None:
        pass


class Files(o.IFileHandler):
    """A tiny read-only file system with two files; handles count from 0x100."""

    def __init__(self) -> None:
        super().__init__()
        self.open: dict[int, tuple[bytes, int]] = {}

    def OpenFile(
        self, name: str, auth_key: int, permissions: object, mode: object, block: int, request: int
    ) -> object:
        result = o.FileOpenResult()
        data = FILES.get(name)
        if data is None:
            result.status = o.FileStatus.NOT_EXIST
            return result
        handle = 0x100 + len(self.open)
        self.open[handle] = (data, block or 64)
        result.status = o.FileStatus.SUCCESS
        result.fileHandle = handle
        result.fileSize = len(data)
        result.maxBlockSize = block or 64
        return result

    def ReadBlock(self, handle: int, number: int) -> object:
        result = o.FileBlockResult()
        data, block = self.open.get(handle, (b"", 64))
        chunk = data[number * block : (number + 1) * block]
        result.status = o.FileStatus.SUCCESS
        result.data = list(chunk) if not isinstance(result.data, bytes) else chunk
        result.lastBlock = (number + 1) * block >= len(data)
        return result

    def CloseFile(self, handle: int, request: int) -> object:
        self.open.pop(handle, None)
        return o.FileStatus.SUCCESS

    def DeleteFile(self, name: str) -> object:
        return o.FileStatus.SUCCESS if name in FILES else o.FileStatus.NOT_EXIST

    def GetFileInfo(self, name: str) -> object:
        result = o.FileCommandResult()
        result.status = o.FileStatus.SUCCESS if name in FILES else o.FileStatus.NOT_EXIST
        return result

    def AbortFile(self, handle: int) -> None:
        self.open.pop(handle, None)

    def AuthenticateFile(self, user: str, password: str) -> object:
        return o.OutstationFileAuthResult()


class Measurements(o.ISOEHandler):
    def BeginFragment(self, info: object) -> None:
        pass

    def EndFragment(self, info: object) -> None:
        pass

    def Process(self, info: object, values: object) -> None:
        say("MASTER rx", getattr(info, "gv", info))

    def OnDeviceAttribute(self, *args: object) -> None:
        say("MASTER attribute", args[1:3])


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
        say("MASTER task", info.type, info.result)

    def AssignClassDuringStartup(self) -> bool:
        return False

    def Now(self) -> object:
        return o.UTCTimestamp(int(time.time() * 1000))


class _NoOutstation:
    def Apply(self, updates: object) -> None:
        pass


outstation: object = _NoOutstation()
outstation_manager = None
if ROLE != "master":
    outstation_manager = o.DNP3Manager(1)
    channel = outstation_manager.AddTCPServer(
        "server", LOG, o.ServerAcceptMode.CloseExisting, o.IPEndpoint("127.0.0.1", PORT), Listener("OUT")
    )
    # More points and a small transmit fragment make multi-frame, multi-fragment responses.
    database = o.DatabaseConfig(int(os.environ.get("DNP3_POINTS", "10")))
    config = o.OutstationStackConfig(database)
    config.outstation.eventBufferConfig = o.EventBufferConfig.AllTypes(100)
    config.outstation.params.allowUnsolicited = True
    if "DNP3_MAX_TX_FRAG" in os.environ:
        config.outstation.params.maxTxFragSize = int(os.environ["DNP3_MAX_TX_FRAG"])
    config.link.LocalAddr = 10
    config.link.RemoteAddr = 1
    files = Files()
    outstation = channel.AddOutstation("outstation", Commands(), Application(), config, files)
    outstation.Enable()  # type: ignore[attr-defined]


def apply(step: int) -> None:
    builder = o.UpdateBuilder()
    builder.Update(o.Binary(step % 2 == 0), 0)
    builder.Update(o.Analog(12.5 * step), 1)
    builder.Update(o.Counter(100 + step), 2)
    builder.Update(
        o.DoubleBitBinary(o.DoubleBit.DETERMINED_ON if step % 2 else o.DoubleBit.DETERMINED_OFF), 3
    )
    builder.Update(o.BinaryOutputStatus(step % 2 == 1), 0)
    builder.Update(o.AnalogOutputStatus(float(step)), 0)
    outstation.Apply(builder.Build())  # type: ignore[attr-defined]


apply(1)
if ROLE == "outstation":
    deadline = time.time() + RUN_SECONDS
    step = 2
    while time.time() < deadline:
        time.sleep(3)
        apply(step)
        step += 1
    assert outstation_manager is not None
    outstation_manager.Shutdown()
    sys.exit(0)

master_manager = o.DNP3Manager(1)
master_channel = master_manager.AddTCPClient(
    "client", LOG, o.ChannelRetry.Default(), [o.IPEndpoint("127.0.0.1", PORT)], "0.0.0.0", Listener("MASTER")
)
master_config = o.MasterStackConfig()
master_config.master.responseTimeout = o.TimeDuration.Seconds(2)
master_config.master.timeSyncMode = o.TimeSyncMode.LAN
master_config.master.disableUnsolOnStartup = True
master_config.link.LocalAddr = 1
master_config.link.RemoteAddr = 10
handler = Measurements()
master = master_channel.AddMaster("master", handler, MasterApplication(), master_config)
master.Enable()
time.sleep(3)  # startup sequence


def report(name: str) -> object:
    def callback(result: object) -> None:
        say("MASTER", name, "->", getattr(result, "summary", result))

    return callback


def deadbands() -> None:
    band = o.IndexedAnalogInputDeadband() if hasattr(o, "IndexedAnalogInputDeadband") else None
    if band is None:
        return
    try:
        band.index = 1
        band.value = o.AnalogInputDeadband(2.5)
    except Exception as exc:  # the binding's field names vary between builds
        say("deadband setup", exc)
        return
    master.WriteDeadBands([band], report("deadbands"))


FILE_STEPS = os.environ.get("DNP3_FILES", "1") == "1" and ROLE == "both"
steps = [
    ("event poll class 1/2/3", lambda: master.ScanClasses(o.ClassField(False, True, True, True), handler)),
    ("updates -> unsolicited", lambda: apply(2)),
    ("integrity poll", lambda: master.ScanClasses(o.ClassField(True, True, True, True), handler)),
    ("read g30v1 0-4", lambda: master.ScanRange(o.GroupVariationID(30, 1), 0, 4, handler)),
    ("read g1v2", lambda: master.ScanAllObjects(o.GroupVariationID(1, 2), handler)),
    (
        "direct operate CROB latch on 0",
        lambda: master.DirectOperate(
            o.ControlRelayOutputBlock(o.OperationType.LATCH_ON), 0, report("DO CROB")
        ),
    ),
    (
        "select/operate CROB pulse on 1",
        lambda: master.SelectAndOperate(
            o.ControlRelayOutputBlock(o.OperationType.PULSE_ON, o.TripCloseCode.NUL, False, 1, 500, 500),
            1,
            report("SBO CROB"),
        ),
    ),
    ("direct operate AO int16", lambda: master.DirectOperate(o.AnalogOutputInt16(1234), 0, report("AO16"))),
    (
        "select/operate AO float32",
        lambda: master.SelectAndOperate(o.AnalogOutputFloat32(3.25), 1, report("AOF")),
    ),
    ("direct operate AO int32", lambda: master.DirectOperate(o.AnalogOutputInt32(70000), 2, report("AO32"))),
    (
        "direct operate AO double",
        lambda: master.DirectOperate(o.AnalogOutputDouble64(-1.5), 3, report("AOD")),
    ),
    (
        "immediate freeze g20",
        lambda: master.Freeze(o.FreezeType.ImmediateFreeze, [o.Header.AllObjects(20, 0)]),
    ),
    (
        "freeze and clear g20",
        lambda: master.Freeze(o.FreezeType.FreezeAndClear, [o.Header.AllObjects(20, 0)]),
    ),
    ("read frozen counters g21v1", lambda: master.ScanAllObjects(o.GroupVariationID(21, 1), handler)),
    ("write dead-band g34", deadbands),
    (
        "disable unsolicited",
        lambda: master.PerformFunction(
            "disable unsol",
            o.FunctionCode.DISABLE_UNSOLICITED,
            [o.Header.AllObjects(60, 2), o.Header.AllObjects(60, 3), o.Header.AllObjects(60, 4)],
        ),
    ),
    ("updates (no unsolicited)", lambda: apply(3)),
    ("event poll #2", lambda: master.ScanClasses(o.ClassField(False, True, True, True), handler)),
    (
        "enable unsolicited",
        lambda: master.PerformFunction(
            "enable unsol",
            o.FunctionCode.ENABLE_UNSOLICITED,
            [o.Header.AllObjects(60, 2), o.Header.AllObjects(60, 3), o.Header.AllObjects(60, 4)],
        ),
    ),
    ("updates -> unsolicited #2", lambda: apply(4)),
    (
        "record current time",
        lambda: master.PerformFunction("record time", o.FunctionCode.RECORD_CURRENT_TIME, []),
    ),
    ("delay measurement", lambda: master.PerformFunction("delay", o.FunctionCode.DELAY_MEASURE, [])),
    ("link status", lambda: master.CheckLinkStatus(report("link status"))),
    ("device attributes g0v254", lambda: master.ScanAllObjects(o.GroupVariationID(0, 254), handler)),
    ("read g30v5", lambda: master.ScanAllObjects(o.GroupVariationID(30, 5), handler)),
    ("read g30v1 20-25 (out of range)", lambda: master.ScanRange(o.GroupVariationID(30, 1), 20, 25, handler)),
    (
        "CROB to index 9 (not supported)",
        lambda: master.DirectOperate(
            o.ControlRelayOutputBlock(o.OperationType.LATCH_OFF), 9, report("CROB 9")
        ),
    ),
    ("warm restart", lambda: master.Restart(o.RestartType.WARM, report("warm restart"))),
    ("cold restart", lambda: master.Restart(o.RestartType.COLD, report("cold restart"))),
    (
        "stop application (unsupported)",
        lambda: master.PerformFunction("stop", o.FunctionCode.STOP_APPLICATION, []),
    ),
]
if FILE_STEPS:
    steps += [
        ("file info", lambda: master.GetFileInfo("/data/config.txt", report("file info"))),
        ("read file", lambda: master.ReadFile("/data/config.txt", report("read file"))),
        ("read missing file", lambda: master.ReadFile("/data/missing.bin", report("read missing"))),
        ("delete file", lambda: master.DeleteFile("/data/log.csv", report("delete file"))),
    ]
for name, step in steps:
    say("=== STEP", name)
    try:
        step()
    except Exception as exc:  # a step the binding refuses must not end the capture
        say("   step error", type(exc).__name__, exc)
    time.sleep(1.0)
time.sleep(2)
master_manager.Shutdown()
if outstation_manager is not None:
    outstation_manager.Shutdown()
say("done")
threading.Event().wait(0.1)
