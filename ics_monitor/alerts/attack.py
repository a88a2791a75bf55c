"""MITRE ATT&CK for ICS as data: the tactics and techniques our rules name, with their v19 ids.

Rules in ``rules/*.yaml`` name techniques by their pre-2026 ids (``T0855``); an alert carries both
that id and the one ATT&CK v19 (April 2026) gives it.  v19 introduced ICS sub-techniques and moved
nine techniques under five new parents; everything else kept its id.  The crosswalk below is MITRE's
"ICS sub-techniques crosswalk" (attack.mitre.org/docs/subtechniques/ics-sub-techniques-crosswalk.json,
dated 2026-04-28) as relayed in public project data; the v19 release notes describe the same moves
(firmware split into system/module, blocked communications split by medium).  Techniques that only
gained sub-techniques under them (T0843 Program Download, T0846 Remote System Discovery, T0873) keep
their own id, so ``id_v19`` equals ``id`` for them.

Pure data and two lookups; no I/O.
"""

from __future__ import annotations

# Tactic id -> name (ATT&CK for ICS; unchanged in v19).
TACTICS: dict[str, str] = {
    "TA0100": "Collection",
    "TA0101": "Command and Control",
    "TA0102": "Discovery",
    "TA0103": "Evasion",
    "TA0104": "Execution",
    "TA0105": "Impact",
    "TA0106": "Impair Process Control",
    "TA0107": "Inhibit Response Function",
    "TA0108": "Initial Access",
    "TA0109": "Lateral Movement",
    "TA0110": "Persistence",
    "TA0111": "Privilege Escalation",
}

# Pre-2026 technique id -> name (ATT&CK for ICS v18).  Only techniques our rules may name.
TECHNIQUES: dict[str, str] = {
    "T0800": "Activate Firmware Update Mode",
    "T0801": "Monitor Process State",
    "T0802": "Automated Collection",
    "T0803": "Block Command Message",
    "T0804": "Block Reporting Message",
    "T0805": "Block Serial COM",
    "T0806": "Brute Force I/O",
    "T0809": "Data Destruction",
    "T0812": "Default Credentials",
    "T0813": "Denial of Control",
    "T0814": "Denial of Service",
    "T0815": "Denial of View",
    "T0816": "Device Restart/Shutdown",
    "T0819": "Exploit Public-Facing Application",
    "T0821": "Modify Controller Tasking",
    "T0822": "External Remote Services",
    "T0826": "Loss of Availability",
    "T0827": "Loss of Control",
    "T0829": "Loss of View",
    "T0830": "Adversary-in-the-Middle",
    "T0831": "Manipulation of Control",
    "T0832": "Manipulation of View",
    "T0835": "Manipulate I/O Image",
    "T0836": "Modify Parameter",
    "T0838": "Modify Alarm Settings",
    "T0839": "Module Firmware",
    "T0840": "Network Connection Enumeration",
    "T0842": "Network Sniffing",
    "T0843": "Program Download",
    "T0845": "Program Upload",
    "T0846": "Remote System Discovery",
    "T0848": "Rogue Master",
    "T0849": "Masquerading",
    "T0855": "Unauthorized Command Message",
    "T0856": "Spoof Reporting Message",
    "T0857": "System Firmware",
    "T0858": "Change Operating Mode",
    "T0859": "Valid Accounts",
    "T0861": "Point & Tag Identification",
    "T0864": "Transient Cyber Asset",
    "T0866": "Exploitation of Remote Services",
    "T0867": "Lateral Tool Transfer",
    "T0868": "Detect Operating Mode",
    "T0869": "Standard Application Layer Protocol",
    "T0872": "Indicator Removal on Host",
    "T0877": "I/O Module Discovery",
    "T0878": "Alarm Suppression",
    "T0881": "Service Stop",
    "T0882": "Theft of Operational Information",
    "T0884": "Connection Proxy",
    "T0885": "Commonly Used Port",
    "T0886": "Remote Services",
    "T0888": "Remote System Information Discovery",
    "T0889": "Modify Program",
    "T0891": "Hardcoded Credentials",
    "T0892": "Change Credential",
}

# ATT&CK v19 crosswalk: pre-2026 id -> (v19 id, v19 name) for the techniques that moved.
V19_RENUMBERED: dict[str, tuple[str, str]] = {
    "T0803": ("T1691.001", "Block Operational Technology Message: Command Message"),
    "T0804": ("T1691.002", "Block Operational Technology Message: Reporting Message"),
    "T0855": ("T1692.001", "Unauthorized Message: Command Message"),
    "T0856": ("T1692.002", "Unauthorized Message: Reporting Message"),
    "T0857": ("T1693.001", "Modify Firmware: System Firmware"),
    "T0839": ("T1693.002", "Modify Firmware: Module Firmware"),
    "T0812": ("T1694.001", "Insecure Credentials: Default Credentials"),
    "T0891": ("T1694.002", "Insecure Credentials: Hardcoded Credentials"),
    "T0805": ("T1695.001", "Block Communications: Serial COM"),
}


def tactic_refs(ids: list[str] | tuple[str, ...]) -> tuple[dict[str, str], ...]:
    """``[{id, name}]`` for tactic ids; an unknown id is a configuration error."""
    refs = []
    for tactic_id in ids:
        if tactic_id not in TACTICS:
            raise ValueError(f"unknown ATT&CK for ICS tactic {tactic_id!r}")
        refs.append({"id": tactic_id, "name": TACTICS[tactic_id]})
    return tuple(refs)


def technique_refs(ids: list[str] | tuple[str, ...]) -> tuple[dict[str, str], ...]:
    """``[{id, name, id_v19, name_v19}]`` for pre-2026 technique ids; unknown ids are errors."""
    refs = []
    for technique_id in ids:
        if technique_id not in TECHNIQUES:
            raise ValueError(f"unknown ATT&CK for ICS technique {technique_id!r}")
        name = TECHNIQUES[technique_id]
        id_v19, name_v19 = V19_RENUMBERED.get(technique_id, (technique_id, name))
        refs.append({"id": technique_id, "name": name, "id_v19": id_v19, "name_v19": name_v19})
    return tuple(refs)
