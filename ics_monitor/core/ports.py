"""Well-known server ports: service names for flow records and client/server orientation.

Only ports whose protocol is unambiguous in practice are listed; the names are what analysts search
for (``modbus``, ``s7comm``, ``rdp``), not IANA's formal service names.  No I/O here.
"""

from __future__ import annotations

from typing import Any

TCP_SERVICES: dict[int, str] = {
    20: "ftp-data",
    21: "ftp",
    22: "ssh",
    23: "telnet",
    25: "smtp",
    53: "dns",
    80: "http",
    88: "kerberos",
    102: "s7comm",
    110: "pop3",
    111: "rpcbind",
    135: "msrpc",
    139: "netbios-ssn",
    143: "imap",
    389: "ldap",
    443: "https",
    445: "smb",
    502: "modbus",
    636: "ldaps",
    789: "redlion-crimson",
    802: "modbus-tls",  # Modbus/TCP Security (TLS), IANA mbap-s
    993: "imaps",
    995: "pop3s",
    1433: "mssql",
    1521: "oracle",
    1883: "mqtt",
    1911: "niagara-fox",
    1962: "pcworx",
    2404: "iec-104",
    3306: "mysql",
    3389: "rdp",
    4840: "opc-ua",
    4843: "opc-ua-tls",
    4911: "niagara-fox-tls",
    5007: "melsec",  # Mitsubishi MELSEC communication (SLMP/MC protocol)
    5094: "hart-ip",
    5432: "postgresql",
    5900: "vnc",
    5985: "winrm",
    5986: "winrm-https",
    8080: "http-alt",
    8443: "https-alt",
    8883: "mqtt-tls",
    9600: "omron-fins",
    18245: "ge-srtp",
    19999: "dnp3-tls",  # DNP3 over TLS (IEC 62351-3), IANA dnp-sec
    20000: "dnp3",
    20547: "proconos",
    44818: "ethernet-ip",
    48898: "ads",  # Beckhoff ADS/AMS
}

UDP_SERVICES: dict[int, str] = {
    53: "dns",
    67: "dhcp",
    68: "dhcp",
    69: "tftp",
    123: "ntp",
    137: "netbios-ns",
    138: "netbios-dgm",
    161: "snmp",
    162: "snmp-trap",
    502: "modbus",
    514: "syslog",
    1900: "ssdp",
    2222: "ethernet-ip-io",
    4840: "opc-ua",
    5007: "melsec",
    5094: "hart-ip",
    5353: "mdns",
    9600: "omron-fins",
    20000: "dnp3",
    34964: "profinet-cm",
    44818: "ethernet-ip",
    47808: "bacnet",
    48899: "ads",  # Beckhoff ADS discovery
}


def port_number(value: Any) -> int:
    """A port written in a configuration or baseline file: 0..65535 (a quoted one too), else ValueError."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"a port must be a number 0..65535, not {value!r}")
    return value
