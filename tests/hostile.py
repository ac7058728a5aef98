"""Hostile inputs for every reader, built on the fly and small on disk.

A bomb declares gigabytes in a few megabytes. None is ever held whole here: a
block of the repeated content is put through the compressor once, and its
compressed form repeated (gzip and xz streams may be concatenated, RFC 1952 and
the xz format both say so; a raw deflate stream is cut with full flushes, which
make every later block compress to the same bytes). Zip files are written by
hand from those pieces (PKWARE APPNOTE 4.3.7, 4.3.12, 4.3.16), so a member can
declare what zipfile would never write (encryption, an unknown method).
"""

from __future__ import annotations

import gzip
import lzma
import os
import struct
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

#: Bytes of repeated content put through the compressor at a time.
BLOCK = 1 << 24


def _blocks(unit: bytes, total: int) -> tuple[bytes, int, bytes]:
    """(a block of about :data:`BLOCK` bytes of ``unit`` repeated, how many whole blocks
    there are in ``total`` bytes of it, the rest)."""
    assert total % len(unit) == 0
    per_block = max(1, BLOCK // len(unit))
    whole, rest = divmod(total // len(unit), per_block)
    return unit * per_block, whole, unit * rest


@cache
def _gzip_block(unit: bytes) -> bytes:
    return gzip.compress(_blocks(unit, 0)[0], compresslevel=9, mtime=0)


@cache
def _xz_block(unit: bytes) -> bytes:
    return lzma.compress(_blocks(unit, 0)[0], preset=1)


def gzip_of(prefix: bytes, total: int, unit: bytes = b"\0", suffix: bytes = b"") -> bytes:
    """A gzip file of ``prefix``, ``total`` bytes of ``unit`` repeated, then ``suffix``:
    one member per block (a multi-member gzip, as ``cat a.gz b.gz`` makes)."""
    _, whole, rest = _blocks(unit, total)
    parts = [gzip.compress(prefix, mtime=0)]
    parts += [_gzip_block(unit)] * whole
    parts += [gzip.compress(rest + suffix, mtime=0)]
    return b"".join(parts)


def xz_of(prefix: bytes, total: int) -> bytes:
    """An xz file of ``prefix`` then ``total`` zero bytes: concatenated xz streams."""
    _, whole, rest = _blocks(b"\0", total)
    parts = [lzma.compress(prefix, preset=1)] + [_xz_block(b"\0")] * whole
    return b"".join([*parts, lzma.compress(rest, preset=1)])


@dataclass(frozen=True)
class Deflated:
    """A raw deflate stream and what it inflates to: its size and CRC-32."""

    data: bytes
    size: int
    crc: int


def deflate_of(prefix: bytes, total: int, unit: bytes = b"\0") -> Deflated:
    """Raw deflate of ``prefix`` then ``total`` bytes of ``unit`` repeated (a zip
    member's data). The CRC is computed over the repeated block, never the whole."""
    block, whole, rest = _blocks(unit, total)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    pieces = [compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(prefix)
    if whole:
        first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
        pieces.append(first)
        if whole > 1:
            again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
            assert again == first  # after a full flush, the same block, the same bytes
            pieces += [again] * (whole - 1)
        for _ in range(whole):
            crc = zlib.crc32(block, crc)
    pieces.append(compressor.compress(rest) + compressor.flush())
    crc = zlib.crc32(rest, crc)
    return Deflated(b"".join(pieces), len(prefix) + total, crc)


STORED, DEFLATED = 0, 8


@dataclass(frozen=True)
class Member:
    """A zip member as it is written: its bytes as stored and what they inflate to."""

    name: str
    stored: bytes
    size: int
    crc: int
    method: int = DEFLATED
    flags: int = 0

    @classmethod
    def plain(cls, name: str, data: bytes, method: int = STORED, flags: int = 0) -> Member:
        stored = data
        if method == DEFLATED:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            stored = compressor.compress(data) + compressor.flush()
        return cls(name, stored, len(data), zlib.crc32(data), method, flags)

    @classmethod
    def deflated(cls, name: str, deflated: Deflated) -> Member:
        return cls(name, deflated.data, deflated.size, deflated.crc)


def write_zip(path: Path, members: list[Member]) -> Path:
    """Write ``members`` as a zip (no zip64: every size below 4 GiB)."""
    entries = []
    with path.open("wb") as out:
        for m in members:
            assert max(m.size, len(m.stored)) < 2**32
            name = m.name.encode()
            fields = (20, m.flags, m.method, 0, 0x21, m.crc, len(m.stored), m.size, len(name), 0)
            entries.append((out.tell(), name, fields))
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name + m.stored)
        start = out.tell()
        for offset, name, fields in entries:
            central = struct.pack("<IH", 0x02014B50, 20) + struct.pack("<HHHHHIIIHH", *fields)
            out.write(central + struct.pack("<HHHII", 0, 0, 0, 0, offset) + name)
        size = out.tell() - start
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), size, start, 0))  # fmt: skip
    return path


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    """The ``.npy`` magic and header of a C-ordered array (numpy's format 1.0)."""
    out = _Bytes()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.data


class _Bytes:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def npy_bytes(array: np.ndarray) -> bytes:
    """A small array as an ``.npy`` member's bytes."""
    out = _Bytes()
    np.lib.format.write_array(out, array, allow_pickle=False)
    return out.data


def zero_npz(path: Path, key: str, shape: tuple[int, ...], **small: np.ndarray) -> Path:
    """An npz whose ``key`` is a deflated uint8 array of zeros of ``shape`` (any size),
    beside ``small`` arrays stored as they are."""
    header = npy_header(shape)
    big = Member.deflated(f"{key}.npy", deflate_of(header, int(np.prod(shape, dtype=np.int64))))
    rest = [Member.plain(f"{k}.npy", npy_bytes(v)) for k, v in small.items()]
    return write_zip(path, [big, *rest])


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def png_of_zeros(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG of ``width`` x ``height`` black pixels (RGB by default), its IDAT made by
    repeating deflate blocks: a 10,000 x 10,000 image is a few hundred KB."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    raw = (1 + width * channels) * height  # a filter byte (0) before each row
    deflated = deflate_of(b"", raw)
    adler = ((raw % 65521) << 16) | 1  # adler-32 of zero bytes: a = 1, b = n
    idat = b"\x78\xda" + deflated.data + struct.pack(">I", adler)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sparse_file(path: Path, head: bytes, size: int) -> Path:
    """A file of ``size`` bytes that starts with ``head``: the rest is a hole (zeros that
    take no disk)."""
    with path.open("wb") as out:
        out.write(head)
        out.truncate(size)
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def lines(*rows: str) -> bytes:
    return "".join(row + "\n" for row in rows).encode()


def pixels_row(label: object, count: int, value: int = 0) -> str:
    return ",".join([str(label), *([str(value)] * count)])


# The inputs of issue 24, one builder each ---------------------------------------------

GIB = 1 << 30
HEADERLESS_2X2 = "mnist_train.csv"  # headerless: a label, then 4 pixel values (2 x 2)


def small_npz_members(n: int = 2) -> list[Member]:
    x, y = np.zeros((n, 28, 28), np.uint8), np.zeros(n, np.uint8)
    return [
        Member.plain("y_train.npy", npy_bytes(y), DEFLATED),
        Member.plain("x_test.npy", npy_bytes(x), DEFLATED),
        Member.plain("y_test.npy", npy_bytes(y), DEFLATED),
    ]


def kmnist_bomb(tmp: Path, count: int = 4_460_000) -> Path:
    """kmnist-train-imgs.npz: 3.4 MB that inflates to 3.5 GB (4.46 million blank images)."""
    folder = tmp / "kmnist"
    folder.mkdir()
    for role, shape in (("imgs", (count, 28, 28)), ("labels", (count,))):
        deflated = deflate_of(npy_header(shape), int(np.prod(shape)))
        write_zip(folder / f"kmnist-train-{role}.npz", [Member.deflated("arr_0.npy", deflated)])
    return folder / "kmnist-train-imgs.npz"


def keras_npz_bomb(tmp: Path, count: int = 1_300_000) -> Path:
    """mnist.npz whose x_train inflates to 1 GB of blank images (y_train too short)."""
    x_train = deflate_of(npy_header((count, 28, 28)), count * 784)
    members = [Member.deflated("x_train.npy", x_train), *small_npz_members()]
    return write_zip(tmp / "mnist.npz", members)


def npz_huge_image(tmp: Path, side: int = 33_000) -> Path:
    """mnist.npz holding one 33,000 x 33,000 image (1.1 GB; SQLite's blob limit is 1 GB)."""
    x_train = deflate_of(npy_header((1, side, side)), side * side)
    y_train = Member.plain("y_train.npy", npy_bytes(np.zeros(1, np.uint8)))
    members = [Member.deflated("x_train.npy", x_train), y_train, *small_npz_members()[1:]]
    return write_zip(tmp / "mnist.npz", members)


def idx_huge_images(tmp: Path, count: int = 4096, side: int = 1024) -> Path:
    """An IDX pair of 4,096 images of 1024 x 1024: 4 GiB in a 4 MB gzip."""
    folder = tmp / "idx"
    folder.mkdir()
    images = gzip_of(idx_header(0x08, (count, side, side)), count * side * side)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(images)
    labels = gzip.compress(idx_header(0x08, (count,)) + bytes(count), mtime=0)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(labels)
    return folder


def emnist_huge_images(tmp: Path) -> Path:
    """An EMNIST gzip.zip of 7 KB whose images file declares 4,096 images of 1024 x 1024."""
    images = gzip.compress(idx_header(0x08, (4096, 1024, 1024)) + bytes(7 << 20), 9, mtime=0)
    labels = gzip.compress(idx_header(0x08, (4096,)) + bytes(4096), mtime=0)
    return write_zip(
        tmp / "gzip.zip",
        [
            Member.plain("gzip/emnist-mnist-train-images-idx3-ubyte.gz", images),
            Member.plain("gzip/emnist-mnist-train-labels-idx1-ubyte.gz", labels),
            Member.plain("gzip/emnist-mnist-mapping.txt", b"0 48\n"),
        ],
    )


def emnist_with_mapping(tmp: Path, mapping: Member) -> Path:
    """An EMNIST gzip.zip of two letters and the mapping member given."""
    images = gzip.compress(idx_header(0x08, (2, 28, 28)) + bytes(2 * 784), mtime=0)
    labels = gzip.compress(idx_header(0x08, (2,)) + bytes([1, 2]), mtime=0)
    return write_zip(
        tmp / "gzip.zip",
        [
            Member.plain("gzip/emnist-letters-train-images-idx3-ubyte.gz", images),
            Member.plain("gzip/emnist-letters-train-labels-idx1-ubyte.gz", labels),
            mapping,
        ],
    )


def emnist_mapping_bomb(tmp: Path, size: int = 1_500_000_000) -> Path:
    """An EMNIST zip whose mapping file inflates to 1.5 GB of lines."""
    text = deflate_of(b"", size, unit=b"1 65 97\n")
    return emnist_with_mapping(tmp, Member.deflated("gzip/emnist-letters-mapping.txt", text))


def emnist_many_classes(tmp: Path, classes: int = 2000) -> Path:
    """An EMNIST zip whose mapping file lists 2,000 classes."""
    text = "".join(f"{n} {65 + n % 26}\n" for n in range(classes)).encode()
    mapping = Member.plain("gzip/emnist-letters-mapping.txt", text, DEFLATED)
    return emnist_with_mapping(tmp, mapping)


def pickle_bomb(tmp: Path, size: int = 4 * GIB) -> Path:
    """mnist.pkl.gz: BINBYTES8 of 4 GiB of zeros in a 4 MB gzip."""
    prefix = b"\x80\x04\x8e" + struct.pack("<Q", size)
    return write_bytes(tmp / "mnist.pkl.gz", gzip_of(prefix, size, suffix=b"."))


def pickle_of_dups(tmp: Path, count: int = 600_000, gz: bool = False) -> Path:
    """A pickle of 0.6 MB of DUP opcodes (or 600 MB of them in a 0.6 MB gzip)."""
    if gz:
        return write_bytes(tmp / "mnist.pkl.gz", gzip_of(b"\x80\x02N", count * 1000, b"2", b"."))
    return write_bytes(tmp / "mnist.pkl", b"\x80\x02N" + b"2" * count + b".")


def parquet_huge_rgb(tmp: Path, side: int = 10_000) -> Path:
    """A Hugging Face parquet whose one image is a 10,000 x 10,000 RGB PNG (300 KB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.array(
        [{"bytes": png_of_zeros(side, side), "path": "0.png"}],
        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    path = tmp / "train.parquet"
    pq.write_table(pa.table({"image": image, "label": pa.array([0])}), path)
    return path


def csv_wide_lines(tmp: Path, count: int = 256, side: int = 512) -> Path:
    """A headerless CSV.gz of 256 images of 512 x 512: 134 MB of text in 130 KB."""
    line = ("0" + ",0" * (side * side) + "\n").encode()
    return write_bytes(tmp / "mnist_train.csv.gz", gzip_of(b"", count * len(line), unit=line))


def csv_endless_line(tmp: Path, size: int = GIB, gz: bool = False) -> Path:
    """A CSV whose first line runs 1 GB without a newline (a hole on disk, or a gzip)."""
    if gz:
        return write_bytes(tmp / "mnist_train.csv.gz", gzip_of(b"5", size, unit=b",0"))
    return sparse_file(tmp / "mnist_train.csv", b"5" + b",0" * 64, size)


def csv_rows(tmp: Path, *rows: str, name: str = HEADERLESS_2X2) -> Path:
    return write_bytes(tmp / name, lines(*rows))


def qmnist_xz(tmp: Path, count: int = 10_000_000) -> Path:
    """QMNIST's xnist files declaring 10 million blank images: 1.2 MB of xz."""
    folder = tmp / "qmnist"
    folder.mkdir()
    images = xz_of(idx_header(0x08, (count, 28, 28)), count * 784)
    (folder / "xnist-images-idx3-ubyte.xz").write_bytes(images)
    labels = xz_of(idx_header(0x0C, (count, 8)), count * 32)
    (folder / "xnist-labels-idx2-int.xz").write_bytes(labels)
    return folder


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
