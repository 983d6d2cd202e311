"""Truncation from the header, for every container libsndfile reads: the container is recognised
by its first bytes (never by the file's name), and the amount of audio its header declares is
compared with what the file holds. libsndfile itself quietly returns the part that is there
(a truncated copy, an interrupted download or write).

    RIFF/RIFX/RF64/BW64 WAVE, AIFF/AIFC, Sony Wave64, Sun/NeXT AU, Apple CAF: the data chunk's
    declared size against the bytes after it;
    Ogg (Vorbis, Opus, FLAC in Ogg): the last page must be complete and end the stream;
    everything else (FLAC, MP3): :func:`diffsep.storage.audio.read_audio` compares the frames the
    header declares with the frames that can be decoded.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

UNKNOWN_32 = (0, 0xFFFFFFFF)  # sizes that streaming writers leave for "until the end of the file"
OGG_MAX_PAGE = 27 + 255 + 255 * 255


class TruncatedError(ValueError):
    """The header declares more audio than the file holds; the message says how much."""


def check_complete(path: Path | str) -> None:
    """Raise TruncatedError (message: "truncated KIND (...)", without the file name) when the
    header of ``path`` declares more audio than the file holds; return quietly for complete files
    and for containers without such a header."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(40)
        magic, form = head[:4], head[8:12]
        if magic in (b"RIFF", b"RIFX", b"RF64", b"BW64") and form == b"WAVE":
            _riff(f, size, ">" if magic == b"RIFX" else "<")
        elif magic == b"FORM" and form in (b"AIFF", b"AIFC"):
            _chunks(f, size, 12, ">I", 8, b"SSND", "AIFF")
        elif magic == b"riff" and head[24:28] == b"wave":  # Sony Wave64: GUIDs, 64-bit sizes
            _wave64(f, size)
        elif magic in (b".snd", b"dns."):
            _au(head, size, ">" if magic == b".snd" else "<")
        elif magic == b"caff":
            _chunks(f, size, 8, ">q", 12, b"data", "CAF")
        elif magic == b"OggS":
            _ogg(f, size)


def _short(kind: str, declared: int, have: int) -> TruncatedError:
    return TruncatedError(f"truncated {kind} (the header declares {declared} bytes of audio, "
                          f"the file holds {have})")


def _riff(f, size: int, order: str) -> None:
    """WAVE chunks after the 12-byte RIFF header; RF64/BW64 keep the real data size in 'ds64'."""
    pos, big_data = 12, None
    while pos + 8 <= size:
        f.seek(pos)
        cid, n = struct.unpack(order + "4sI", f.read(8))
        if cid == b"ds64":
            big_data = struct.unpack("<Q", f.read(16)[8:16])[0]
        elif cid == b"data":
            if n == 0xFFFFFFFF and big_data is not None:
                n = big_data
            elif n in UNKNOWN_32:
                return
            if n > size - pos - 8:
                raise _short("WAV", n, size - pos - 8)
            return
        pos += 8 + n + (n & 1)


def _chunks(f, size: int, pos: int, size_format: str, header: int, data_id: bytes, kind: str) -> None:
    """Chunks of (4-byte id, big-endian size) from ``pos`` (AIFF: 32-bit sizes, CAF: 64-bit,
    -1 for "until the end"); ``header`` bytes of id and size before each chunk's body."""
    while pos + header <= size:
        f.seek(pos)
        cid = f.read(4)
        n, = struct.unpack(size_format, f.read(header - 4))
        if cid == data_id:
            if n < 0:
                return
            if n > size - pos - header:
                raise _short(kind, n, size - pos - header)
            return
        pos += header + n + (n & 1 if kind == "AIFF" else 0)


def _wave64(f, size: int) -> None:
    """Sony Wave64: chunks of (16-byte GUID, 64-bit little-endian size including those 24 bytes),
    aligned to 8 bytes, after the 40-byte riff/wave header."""
    pos = 40
    while pos + 24 <= size:
        f.seek(pos)
        guid, n = struct.unpack("<16sQ", f.read(24))
        if n < 24:
            return
        if guid[:4] == b"data":
            if n - 24 > size - pos - 24:
                raise _short("Wave64", n - 24, size - pos - 24)
            return
        pos += (n + 7) // 8 * 8


def _au(head: bytes, size: int, order: str) -> None:
    """Sun/NeXT AU: data offset and data size in the header (0xFFFFFFFF: unknown)."""
    if len(head) < 12:
        return
    offset, n = struct.unpack(order + "II", head[4:12])
    if n != 0xFFFFFFFF and n > size - offset:
        raise _short("AU", n, max(0, size - offset))


def _ogg(f, size: int) -> None:
    """The last page of a complete Ogg stream is whole and carries the end-of-stream flag; a cut
    file ends inside a page or before the last one. (Bytes after a whole last page are let be.)"""
    f.seek(max(0, size - OGG_MAX_PAGE - 27))
    tail = f.read()
    p = len(tail)
    while True:
        p = tail.rfind(b"OggS", 0, p)
        if p < 0:
            return  # no page header near the end: not ours to judge
        if p + 27 <= len(tail) and tail[p + 4] == 0:  # capture pattern and stream structure version 0
            break
    n_segments = tail[p + 26]
    table = tail[p + 27:p + 27 + n_segments]
    if len(table) < n_segments or p + 27 + n_segments + sum(table) > len(tail):
        raise TruncatedError("truncated Ogg (the last page is incomplete)")
    if not tail[p + 5] & 0x04:
        raise TruncatedError("truncated Ogg (the stream stops before its last page)")
