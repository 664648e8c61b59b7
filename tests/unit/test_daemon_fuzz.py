"""Fuzzing the daemon's socket: >= 10,000 random and mutated messages.

Each message goes on its own connection; the daemon's answers must be exactly what the
pure-Python mirror of the protocol predicts: an error reply then a closed connection for
anything malformed, oversized or unknown, proper replies for valid requests. Meanwhile another
client holds GPU 0, and afterwards that hold is intact and no other clock was ever applied.
"""

from __future__ import annotations

import random
import re
import struct
import time

from gearshift.daemon import wire

from test_daemon import Daemon, exchange, raw_connect  # noqa: F401  (fixture helpers)

N_MESSAGES = 10_000
LEASE_S = 60.0
H100 = set(range(345, 1981, 15))


def valid_message(rng: random.Random) -> bytes:
    t = rng.choice(list(wire.PAYLOAD_SIZE))
    if t == wire.LOCK:
        gpu = rng.choice([0, 0, 0, 1, 7, 2**32 - 1])
        mhz = rng.choice([1410, 1395, 345, 1980, 1400, 0, 2**32 - 1, rng.randrange(0, 3000)])
        return wire.lock(gpu, mhz)
    if t in (wire.RESET, wire.CLOCKS):
        return wire.gpu_request(t, rng.choice([0, 0, 1, 2**31]))
    return wire.frame(t)


def mutate(rng: random.Random, msg: bytes) -> bytes:
    b = bytearray(msg)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(8)
        if op == 0 and b:                                   # flip a byte
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1:                                       # lie about the length
            if len(b) >= 8:
                b[4:8] = struct.pack("<I", rng.choice([0, 1, 3, 4, 7, 9, 4096, 4097, 2**31,
                                                       2**32 - 1, rng.randrange(2**32)]))
        elif op == 2 and b:                                 # truncate
            del b[rng.randrange(len(b)):]
        elif op == 3:                                       # trailing garbage
            b += rng.randbytes(rng.randint(1, 24))
        elif op == 4:                                       # another frame after it
            b += valid_message(rng)
        elif op == 5 and len(b) >= 3:                       # other version
            b[2] = rng.choice([0, 2, 255])
        elif op == 6 and len(b) >= 4:                       # other type, replies included
            b[3] = rng.choice([0, 7, 0x80, 0x81, 0x84, 255, rng.randrange(256)])
        elif op == 7:                                       # a huge but honest payload
            b = bytearray(wire.frame(rng.choice([wire.STATUS, 99]), rng.randbytes(
                rng.choice([8, 4096, 4100]))))
    return bytes(b)


def kind(reply: tuple[int, bytes]):
    t, payload = reply
    return ("error", wire.error_code(payload)) if t == wire.ERROR else t


def test_fuzz_daemon_socket():
    rng = random.Random(20261123)
    d = Daemon(backend="dry-run", lease_s=LEASE_S)
    try:
        holder = raw_connect(d.socket)
        holder.sendall(wire.lock(0, 1410))
        assert wire.parse_replies(holder.recv(64)) == [(wire.OK, b"")]

        t0 = last_beat = time.monotonic()
        errors = protocol_errors = valid = 0
        for i in range(N_MESSAGES):
            # The holder heartbeats as a real client does: on a loaded machine the 10,000
            # connections can take longer than the lease.
            if time.monotonic() - last_beat > LEASE_S / 6:
                holder.sendall(wire.frame(wire.HEARTBEAT))
                assert wire.parse_replies(holder.recv(64)) == [(wire.OK, b"")]
                last_beat = time.monotonic()
            r = rng.random()
            if r < 0.25:
                msg = rng.randbytes(rng.randint(0, 64))
            elif r < 0.35:
                msg = valid_message(rng)
            else:
                msg = mutate(rng, valid_message(rng))
            expected = wire.predict(msg, gpu_count=1, supported=H100, held_by_other={0})
            replies, closed = exchange(d.socket, msg)
            got = [kind(x) for x in replies]
            assert got == expected, f"message {i}: {msg.hex()} -> {got}, expected {expected}"
            assert closed
            errors += any(isinstance(k, tuple) for k in got)
            protocol_errors += bool(got) and isinstance(got[-1], tuple) and got[-1][1] < 10
            valid += bool(got) and not isinstance(got[-1], tuple)
        elapsed = time.monotonic() - t0

        # Every kind of message was exercised, and most were refused as malformed.
        assert protocol_errors > N_MESSAGES // 2 and valid > 500, (protocol_errors, valid)
        # The daemon still serves, the holder still holds, and nothing else was ever applied.
        holder.sendall(wire.frame(wire.STATUS))
        (t, payload), = wire.parse_replies(holder.recv(4096))
        n, idx, mhz, uid, pid, flags = struct.unpack("<6I", payload)
        assert (t, n, idx, mhz, flags) == (wire.STATUS_REPLY, 1, 0, 1410, 1)
        print(f"fuzz: {N_MESSAGES} messages in {elapsed:.1f} s, {protocol_errors} protocol "
              f"errors, {errors} refusals in all")
        # The holder's disconnect is the daemon's last act, and the log is written in order:
        # once its reset is there, so is every event before it (no guessing at the flush).
        holder.close()
        last = d.wait_event(r"reset gpu=0 reason=disconnect")
        events = d.events()
        assert len([e for e in events if re.search(r" lock ", e)]) == 1, events[:5]
        assert [e for e in events if " reset " in e] == [last]  # nothing reset before it
        assert sum(" protocol-error " in e for e in events) == protocol_errors
    finally:
        d.close()
