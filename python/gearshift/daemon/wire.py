"""A pure-Python mirror of the daemon's wire protocol (csrc/daemon/protocol.h).

The daemon speaks it in C++; this mirror lets tests build frames byte by byte, predict the
daemon's answer to any input (the fuzz test checks the two agree), and debug a socket by hand.
"""

from __future__ import annotations

import struct

MAGIC = b"GS"
VERSION = 1
HEADER = struct.Struct("<2sBBI")
MAX_PAYLOAD = 4096

HELLO, LOCK, RESET, HEARTBEAT, STATUS, CLOCKS = 1, 2, 3, 4, 5, 6
OK, ERROR, HELLO_REPLY, STATUS_REPLY, CLOCKS_REPLY = 0x80, 0x81, 0x82, 0x83, 0x84
PAYLOAD_SIZE = {HELLO: 0, LOCK: 8, RESET: 4, HEARTBEAT: 0, STATUS: 0, CLOCKS: 4}

MALFORMED, OVERSIZED, UNKNOWN_TYPE, BAD_VERSION, NOT_ALLOWED = 1, 2, 3, 4, 5
BAD_GPU, UNSUPPORTED_CLOCK, HELD_BY_OTHER, BACKEND, LEASE_EXPIRED = 10, 11, 12, 13, 14


def frame(msg_type: int, payload: bytes = b"", version: int = VERSION) -> bytes:
    return HEADER.pack(MAGIC, version, msg_type, len(payload)) + payload


def lock(gpu: int, mhz: int) -> bytes:
    return frame(LOCK, struct.pack("<II", gpu, mhz))


def gpu_request(msg_type: int, gpu: int) -> bytes:
    return frame(msg_type, struct.pack("<I", gpu))


def parse_replies(data: bytes) -> list[tuple[int, bytes]]:
    """Split a reply stream into (type, payload); raises ValueError on anything malformed."""
    out = []
    while data:
        if len(data) < HEADER.size:
            raise ValueError(f"truncated reply header ({len(data)} bytes)")
        magic, version, msg_type, length = HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION or length > MAX_PAYLOAD:
            raise ValueError(f"bad reply header {data[:8].hex()}")
        if len(data) < HEADER.size + length:
            raise ValueError("truncated reply payload")
        out.append((msg_type, data[HEADER.size:HEADER.size + length]))
        data = data[HEADER.size + length:]
    return out


def error_code(payload: bytes) -> int:
    return struct.unpack_from("<H", payload)[0]


def predict(data: bytes, gpu_count: int, supported: set[int], held_by_other: set[int]) -> list:
    """What the daemon answers when a client sends ``data`` and then closes its sending side.

    Returns a list of reply kinds: a reply type, or ``("error", code)``; a protocol violation
    ends the list (the daemon closes the connection after it).
    """
    out: list = []
    off = 0
    while off < len(data):
        rest = data[off:]
        if rest[0] != MAGIC[0] or (len(rest) > 1 and rest[1] != MAGIC[1]):
            return out + [("error", MALFORMED)]
        if len(rest) > 2 and rest[2] != VERSION:
            return out + [("error", BAD_VERSION)]
        if len(rest) < HEADER.size:
            return out + [("error", MALFORMED)]  # truncated at end of input
        _, _, msg_type, length = HEADER.unpack_from(rest)
        if length > MAX_PAYLOAD:
            return out + [("error", OVERSIZED)]
        if msg_type not in PAYLOAD_SIZE:
            return out + [("error", UNKNOWN_TYPE)]
        if length != PAYLOAD_SIZE[msg_type]:
            return out + [("error", MALFORMED)]
        if len(rest) < HEADER.size + length:
            return out + [("error", MALFORMED)]
        payload = rest[HEADER.size:HEADER.size + length]
        out.append(_answer(msg_type, payload, gpu_count, supported, held_by_other))
        off += HEADER.size + length
    return out


def _answer(msg_type, payload, gpu_count, supported, held_by_other):
    if msg_type == HELLO:
        return HELLO_REPLY
    if msg_type == HEARTBEAT:
        return OK
    if msg_type == STATUS:
        return STATUS_REPLY
    gpu = struct.unpack_from("<I", payload)[0]
    if gpu >= gpu_count:
        return ("error", BAD_GPU)
    if msg_type == CLOCKS:
        return CLOCKS_REPLY
    if msg_type == RESET:
        return ("error", HELD_BY_OTHER) if gpu in held_by_other else OK
    mhz = struct.unpack_from("<I", payload, 4)[0]
    if mhz not in supported:
        return ("error", UNSUPPORTED_CLOCK)
    if gpu in held_by_other:
        return ("error", HELD_BY_OTHER)
    return OK
