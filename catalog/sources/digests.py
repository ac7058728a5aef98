"""Digests of a source file as it is on disk (the ``.gz`` itself), beside those of
its decoded content that the readers compute.

Genuine files are published with either: Fashion-MNIST and KMNIST list the md5
of each ``.gz``, MNIST mirrors re-compress, so only the content survives. Both
are recorded for every source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

from catalog.sources import SourceFile

_CHUNK = 1 << 20
COMPRESSED_SUFFIXES = (".gz", ".xz")


def with_file_digests(file: SourceFile) -> SourceFile:
    """``file`` with ``file_md5``/``file_sha256`` of its bytes on disk.

    An uncompressed file's bytes are its content; a ``.gz`` (or a member of a
    zip, named ``archive.zip!member``) is hashed as stored. A folder has none.
    """
    if not file.format.endswith(COMPRESSED_SUFFIXES):
        if Path(file.uri).is_dir():
            return file
        return dataclasses.replace(file, file_md5=file.md5, file_sha256=file.sha256)
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    archive, _, member = file.uri.partition("!")
    try:
        if member:
            with zipfile.ZipFile(archive) as opened, opened.open(member) as stream:
                # the member's bytes as extracted: the .gz file the zip holds
                while chunk := stream.read(_CHUNK):
                    md5.update(chunk)
                    sha256.update(chunk)
        else:
            with Path(archive).open("rb") as stream:
                while chunk := stream.read(_CHUNK):
                    md5.update(chunk)
                    sha256.update(chunk)
    except (OSError, zipfile.BadZipFile, KeyError):
        return file
    return dataclasses.replace(file, file_md5=md5.hexdigest(), file_sha256=sha256.hexdigest())
