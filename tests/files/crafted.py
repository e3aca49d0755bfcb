"""Hostile files built in memory in milliseconds: ZIPs whose central directory is huge."""

from __future__ import annotations

import struct
import zlib


def crafted_zip(entries: int, *, declared: int | None = None, zip64: bool | None = None,
                name: bytes = b"x.xml") -> bytes:
    """One stored member, then `entries` central-directory records that all point at it.

    `declared` is the entry count the end records state (the real one by default); more than
    65,535 entries (or `zip64=True`) writes the ZIP64 end record and its locator, as real
    archivers do. A million entries make 51 MB and take a fraction of a second.
    """
    data = b"<a/>"
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data),
                        len(name), 0) + name + data
    record = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data),
                         len(data), len(name), 0, 0, 0, 0, 0, 0) + name
    directory = record * entries
    count = entries if declared is None else declared
    if zip64 is None:
        zip64 = count > 0xFFFF
    start = len(local)
    if zip64:
        end = start + len(directory)
        tail = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                           len(directory), start)
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
        tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                            0xFFFFFFFF, 0)
    else:
        tail = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory),
                           start, 0)
    return local + directory + tail
