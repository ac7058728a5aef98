"""Where each image goes inside an image-folder export, and as which kind of file.

``OUT`` is the export folder:

- ``classic``: ``OUT/<split>/<index:06d>_<label>.<ext>``, what the old
  ``pyplot.imsave`` recipe wrote, so existing scripts keep working;
- ``by-label``: ``OUT/<split>/<label>/<index:06d>.<ext>``, what torchvision's
  ``ImageFolder`` and Keras' ``image_dataset_from_directory`` read;
- ``flat``: ``OUT/<dataset>_<split>_<index:06d>_<label>.<ext>``.

The extension is the image file format (:data:`FORMATS`, encoded by
:mod:`catalog.export.encoders`). It is not the *output* format (``folder``,
later ``idx``, ``npz`` ...: see :mod:`catalog.export.formats`); a folder export
holds files of one image format.
"""

from __future__ import annotations

LAYOUTS = ("classic", "by-label", "flat")
#: Image file formats of a folder export. PNG, BMP and PGM are lossless 8-bit
#: grayscale: the file decodes to exactly the catalog's pixels; JPG is lossy.
FORMATS = ("png", "jpg", "bmp", "pgm")


def relative_path(
    layout: str, fmt: str, dataset: str, split: str, index: int, label: int | str
) -> str:
    """Where an image goes inside the export folder, as a POSIX relative path.

    ``label`` is the label's number, its folder name (``--folder-names names``),
    or ``unlabeled`` (see :mod:`catalog.export.family`).

    >>> relative_path("classic", "png", "mnist", "test", 7, 9)
    'test/000007_9.png'
    >>> relative_path("by-label", "png", "mnist", "train", 12, 3)
    'train/3/000012.png'
    """
    if layout == "classic":
        return f"{split}/{index:06d}_{label}.{fmt}"
    if layout == "by-label":
        return f"{split}/{label}/{index:06d}.{fmt}"
    return f"{dataset}_{split}_{index:06d}_{label}.{fmt}"
