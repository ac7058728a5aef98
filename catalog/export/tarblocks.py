"""POSIX ustar members, built a block at a time with numpy.

A WebDataset shard holds three members per image, so a header per member built
in Python (string operations and a checksum over 512 bytes) was most of a shard
export's time. Here the headers of a whole block of members are one array: a
template row, the names, sizes and checksums written into their columns, and the
data scattered after its header, each member padded to whole 512-byte blocks.

Every header has mode 0644, owner 0 and mtime 0, so the same members are the
same bytes on every run. Python's ``tarfile``, GNU tar and WebDataset read them.
:func:`read_members` reads such a file back, to compare a shard already in place
with the one an export would put there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

BLOCK = 512
RECORD = 20 * BLOCK  # tar files end on a whole record, as tarfile and GNU tar write them
NAME = 100  # bytes of the name field
_IDS = b"0000644\0" + b"0000000\0" * 2  # mode, uid, gid
_MTIME = b"%011o\0" % 0
_REST = (
    b"0" + b"\0" * 100  # regular file, no link
    + b"ustar\x0000"  # POSIX magic and version
    + b"\0" * 64  # user and group names
    + b"0000000\0" * 2  # device numbers
    + b"\0" * 167  # name prefix and padding
)  # fmt: skip
_BASE_SUM = sum(_IDS) + sum(_MTIME) + sum(b" " * 8) + sum(_REST)
# Field offsets in a header.
_SIZE, _CHECKSUM = 124, 148


def tar_header(name: bytes, size: int) -> bytes:
    """A ustar header for a regular file ``name`` (at most 100 bytes) of ``size`` bytes."""
    size_field = b"%011o\0" % size
    checksum = _BASE_SUM + sum(name) + sum(size_field)
    return b"".join(
        (name.ljust(NAME, b"\0"), _IDS, size_field, _MTIME, b"%06o\0 " % checksum, _REST)
    )


#: A header with an empty name, size 0 and the checksum field empty; its bytes
#: sum to ``_BASE_SUM`` with the checksum field counted as eight spaces.
_TEMPLATE = np.frombuffer(tar_header(b"", 0), np.uint8).copy()
_TEMPLATE[_SIZE : _SIZE + 11] = 0
_TEMPLATE[_CHECKSUM : _CHECKSUM + 8] = 0
_TEMPLATE[_CHECKSUM + 7] = ord(" ")


def _octal(values: npt.NDArray[np.int64], digits: int) -> npt.NDArray[np.uint8]:
    """Each value as ``digits`` zero-padded octal ASCII digits, one row per value."""
    shifts = 3 * np.arange(digits - 1, -1, -1, dtype=np.int64)
    return ((values[:, np.newaxis] >> shifts) & 7).astype(np.uint8) + ord("0")


def _fixed(items: Sequence[bytes], width: int) -> npt.NDArray[np.uint8]:
    """``items`` as rows of ``width`` bytes, zero-padded (numpy's ``S`` strings
    are exactly that: the bytes, then NULs)."""
    return np.array(items, dtype=f"S{width}").view(np.uint8).reshape(len(items), width)


def tar_members(names: Sequence[bytes], datas: Sequence[bytes]) -> memoryview:
    """Members ``names[i]`` holding ``datas[i]``, in order: each a header, the data
    and zeros up to the next 512-byte block (as :func:`tar_header` builds one)."""
    n = len(names)
    if n == 0:
        return memoryview(b"")
    if max(map(len, names)) > NAME:
        long = next(name for name in names if len(name) > NAME)
        msg = f"tar member name {long!r} is longer than {NAME} bytes"
        raise ValueError(msg)
    sizes = np.fromiter(map(len, datas), dtype=np.int64, count=n)
    data_blocks = (sizes + BLOCK - 1) // BLOCK
    first = np.zeros(n, dtype=np.int64)  # the block of each member's header
    np.cumsum(1 + data_blocks[:-1], out=first[1:])
    out = np.empty((int(first[-1] + 1 + data_blocks[-1]), BLOCK), dtype=np.uint8)
    # Headers: the template, then name, size and checksum written into their fields.
    name_bytes, size_digits = _fixed(names, NAME), _octal(sizes, 11)
    checksums = (
        _BASE_SUM + name_bytes.sum(axis=1, dtype=np.int64) + size_digits.sum(axis=1, dtype=np.int64)
    )
    out[first] = _TEMPLATE
    out[first, :NAME] = name_bytes
    out[first, _SIZE : _SIZE + 11] = size_digits
    out[first, _CHECKSUM : _CHECKSUM + 6] = _octal(checksums, 6)
    # Data: members with the same number of blocks at once, each zero-padded to them.
    counts = np.unique(data_blocks)
    for k in counts[counts > 0].tolist():
        members = np.flatnonzero(data_blocks == k)
        picked = datas if len(members) == n else [datas[i] for i in members.tolist()]
        rows = _fixed(picked, k * BLOCK).reshape(len(members), k, BLOCK)
        out[(first[members] + 1)[:, np.newaxis] + np.arange(k)] = rows
    return out.reshape(-1).data


def read_members(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
    """The members of a tar file as (header, data), and the bytes after the last
    member (the end-of-archive blocks); None when ``data`` is not a plain tar of
    regular files as :func:`tar_members` writes them."""
    members: list[tuple[bytes, bytes]] = []
    at = 0
    while at + BLOCK <= len(data):
        header = data[at : at + BLOCK]
        if header[:NAME] == bytes(NAME):  # an end-of-archive block
            return members, data[at:]
        try:
            size = int(header[_SIZE : _SIZE + 12].strip(b"\0 ") or b"0", 8)
        except ValueError:
            return None
        start = at + BLOCK
        at = start + (size + BLOCK - 1) // BLOCK * BLOCK
        if at > len(data):
            return None
        members.append((header, data[start : start + size]))
    return None


def without_size(header: bytes) -> bytes:
    """A member's header without its size and checksum fields (which follow from the data)."""
    return header[:_SIZE] + header[_SIZE + 12 : _CHECKSUM] + header[_CHECKSUM + 8 :]
