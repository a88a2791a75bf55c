"""What a device says it is: identity fields read from protocol records.

* Modbus FC 43/14 read device identification (responses): vendor, product code, revision, URL,
  product and model names, user application name; FC 17 report server id: its text; FC 90
  (Schneider UMAS) READ_ID answered OK: the PLC's model (``140 CPU 311 10``), a string of one
  length byte at offset 22 of the response data (the offset Nmap's ``modicon-info`` reads).
* S7comm SZL responses (0x0011 module identification, 0x001C component identification): order
  number, firmware and hardware versions, serial number, module, plant and AS names, module type,
  copyright; rack/slot from the COTP connection confirm (kept apart: one IP may front several CPUs).
* DNP3 group 0 device attributes in responses: manufacturer, product/model, software and hardware
  versions, serial number, user-assigned names, subset level.

Each function returns plain ``{field: value}`` with short strings (whitespace and NULs stripped,
capped) and no empty values, or None when the record says nothing about identity.  Field names are
the inventory's identity keys; they never change once published.  A record's nested fields are
plain dicts, as dissected or as unmarshalled from a worker (checked as ``dict``: an ABC's instance
check costs a Python call per record in compiled code).  No state and no I/O here.
"""

from __future__ import annotations

from typing import Any, Final

MAX_VALUE_LENGTH: Final = 256
# Modbus FC 90 (Schneider UMAS): READ_ID, its OK status, where the model string's length byte is.
UMAS: Final = 90
UMAS_READ_ID: Final = 0x02
UMAS_OK: Final = 0xFE
UMAS_MODEL_AT: Final = 22

# FC 43/14 object names (as the Modbus record spells them) -> identity field.
MODBUS_OBJECTS: dict[str, str] = {
    "VendorName": "vendor_name",
    "ProductCode": "product_code",
    "MajorMinorRevision": "revision",
    "VendorUrl": "vendor_url",
    "ProductName": "product_name",
    "ModelName": "model_name",
    "UserApplicationName": "user_application_name",
}

# DNP3 group 0 attributes (IEEE 1815 variations 208-252) that identify the device, not its capacities.
DNP3_ATTRIBUTES: dict[str, str] = {
    "MANUFACTURER_NAME": "manufacturer_name",
    "PRODUCT_NAME_AND_MODEL": "product_name_and_model",
    "SOFTWARE_VERSION": "software_version",
    "HARDWARE_VERSION": "hardware_version",
    "SERIAL_NUMBER": "serial_number",
    "USER_ASSIGNED_DEVICE_NAME": "user_assigned_device_name",
    "USER_ASSIGNED_LOCATION": "user_assigned_location",
    "USER_ASSIGNED_ID": "user_assigned_id",
    "USER_ASSIGNED_OWNER_NAME": "user_assigned_owner_name",
    "USER_ASSIGNED_SYSTEM_NAME": "user_assigned_system_name",
    "SUBSET_AND_CONFORMANCE": "subset_and_conformance",
    "SECURE_AUTHENTICATION_VERSION": "secure_authentication_version",
}

# SZL identity (the S7 record's ``szl.identity``, from lists 0x0011 and 0x001C) -> identity field.
S7_SZL_FIELDS: dict[str, str] = {
    "order_number": "order_number",
    "firmware_version": "firmware",
    "hardware_version": "hardware_version",
    "module_version": "module_version",
    "serial_number": "serial_number",
    "module_name": "module_name",
    "module_type_name": "module_type",
    "plant_id": "plant_id",
    "as_name": "as_name",
    "copyright": "copyright",
    "memory_card_serial_number": "memory_card_serial_number",
    "location_id": "location",
}

# Which identity fields hold a firmware/software version (history is most wanted for these).
VERSION_FIELDS: Final = frozenset(
    {"revision", "firmware", "software_version", "hardware_version", "module_version"}
)


def clean(value: Any) -> Any:
    """Strip and cap a string (NULs and padding too); ints pass; anything else becomes its text."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value).replace("\x00", " ").strip()
    return text[:MAX_VALUE_LENGTH]


def _put(fields: dict[str, Any], name: str, value: Any) -> None:
    value = clean(value)
    if value is not None and value != "":
        fields[name] = value


def modbus_identity(event: Any) -> dict[str, Any] | None:
    """Identity from a Modbus FC 43/14 or FC 17 response (``unit_id`` says which unit answered)."""
    if event.direction != "response" or event.exception_code is not None:
        return None
    fields: dict[str, Any] = {}
    if event.function_code == 43:
        device_id = getattr(event, "device_id", None)
        if not isinstance(device_id, dict):
            return None
        for item in device_id.get("objects") or ():
            name = MODBUS_OBJECTS.get(item.get("name", ""))
            if name is not None:
                _put(fields, name, item.get("value"))
    elif event.function_code == 17:
        extra = getattr(event, "extra", None)
        if isinstance(extra, dict):
            _put(fields, "server_id", extra.get("server_id_text") or extra.get("server_id"))
    elif event.function_code == UMAS:
        model = umas_model(event)
        if model is not None:
            fields["model_name"] = model
    return fields or None


def umas_model(event: Any) -> str | None:
    """The model a UMAS READ_ID response names (status OK, printable text), or None."""
    if getattr(event, "sub_function", None) != UMAS_READ_ID or getattr(event, "status", None) != UMAS_OK:
        return None
    data = getattr(event, "data", None)
    if not isinstance(data, str):
        return None
    try:
        raw = bytes.fromhex(data)
    except ValueError:
        return None
    if len(raw) <= UMAS_MODEL_AT:
        return None
    size = raw[UMAS_MODEL_AT]
    text = raw[UMAS_MODEL_AT + 1 : UMAS_MODEL_AT + 1 + size]
    if not size or len(text) < size or not all(0x20 <= byte < 0x7F for byte in text):
        return None
    model = clean(text)
    return model if isinstance(model, str) and model else None


def dnp3_identity(event: Any) -> dict[str, Any] | None:
    """Identity from the group 0 device attributes of a DNP3 response or unsolicited response."""
    if event.direction != "response" or not event.objects:
        return None
    fields: dict[str, Any] = {}
    for obj in event.objects:
        if obj.get("group") != 0:
            continue
        for point in obj.get("points") or ():
            name = DNP3_ATTRIBUTES.get(point.get("attribute", ""))
            if name is not None:
                _put(fields, name, point.get("value"))
    return fields or None


def s7_identity(event: Any) -> dict[str, Any] | None:
    """Identity from the SZL contents of an S7 response (module and component identification)."""
    szl = getattr(event, "szl", None)
    if event.direction != "response" or not isinstance(szl, dict):
        return None
    identity = szl.get("identity")
    if not isinstance(identity, dict):
        return None
    fields: dict[str, Any] = {}
    for key, value in identity.items():
        name = S7_SZL_FIELDS.get(key)
        if name is not None:
            _put(fields, name, value)
    return fields or None


def s7_rack_slot(event: Any) -> str | None:
    """``rack/slot`` a PLC accepted: from a COTP connection confirm (the PLC is its source).

    A request's rack/slot is only what a client tried (a scanner tries many); the confirm says the
    PLC has a CPU there.  Text TSAPs (S7-1200/1500) have no rack/slot.
    """
    if event.event_type != "cotp" or event.direction != "response":
        return None
    rack = getattr(event, "rack", None)
    slot = getattr(event, "slot", None)
    if isinstance(rack, int) and isinstance(slot, int):
        return f"{rack}/{slot}"
    return None
