"""Every image's pixels against the sha256 stored beside them, and against their size.

Images are read in pages of ids (``id > last ORDER BY id LIMIT n``), each page sized in
bytes by the largest image seen so far, so memory stays about :data:`BLOCK_BYTES`
whatever the images' size, and each page is one short query on either backend.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.db.models.images import Image
from catalog.integrity.report import Found, Progress, dataset_names, image_name
from catalog.select.blocks import untyped

#: Bytes of pixels read at once.
BLOCK_BYTES = 16 << 20
#: Images in the first page (before their size is known), and in any page at most.
FIRST_PAGE = 16
MOST_PAGE = 8192


def run(session: Session, found: Found, progress: Progress | None) -> int:
    """Check every image; returns how many were read."""
    names = dataset_names(session)
    connection = session.connection()
    columns = (Image.id, Image.dataset_id, Image.split, Image.index, Image.height,
               Image.width, Image.sha256, Image.pixels)  # fmt: skip
    sha256 = hashlib.sha256
    last, page, largest, read = 0, FIRST_PAGE, 1, 0
    while True:
        query = select(*columns).where(Image.id > last).order_by(Image.id).limit(page)
        rows = connection.execute(untyped(query)).fetchall()
        if not rows:
            return read
        for _, ds, split, index, height, width, digest, pixels in rows:
            size = len(pixels)
            largest = max(largest, size)
            if size != height * width:
                what = (
                    f"pixels are {size:,} bytes, expected {height} x {width} = {height * width:,}"
                )
                found.add("pixels", image_name(names, ds, split, index), what)
            elif sha256(pixels).hexdigest() != digest:
                what = "pixels do not match their sha256"
                found.add("pixels", image_name(names, ds, split, index), what)
        last, read = rows[-1][0], read + len(rows)
        page = max(1, min(MOST_PAGE, BLOCK_BYTES // largest))
        if progress is not None:
            progress(len(rows))
