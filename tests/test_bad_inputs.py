"""Every kind of bad input, through the command line: one `Error:` line on stderr,
exit code 1, no traceback, and the catalog exactly as it was."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from builders import idx_bytes, random_digits, write_image_folder
from clients import assert_ingest_refused
from PIL import Image

IMAGES = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
LABELS = idx_bytes(np.array([1, 2, 3], dtype=np.uint8))


def idx_folder(root: Path, images: bytes, labels: bytes = LABELS, gz: bool = True) -> Path:
    root.mkdir()
    suffix = ".gz" if gz else ""
    pack = gzip.compress if gz else bytes
    (root / f"train-images-idx3-ubyte{suffix}").write_bytes(pack(images))
    (root / f"train-labels-idx1-ubyte{suffix}").write_bytes(pack(labels))
    return root


def hostile(target: str) -> Callable[[Path], Path]:
    module, name = target.rsplit(".", 1)

    def build(tmp: Path) -> Path:
        # GLOBAL module name, a string argument, REDUCE: what a pickle calling target does
        payload = (
            b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
            b"X\x10\x00\x00\x00touch /tmp/pwnedq\x00\x85R."
        )
        path = tmp / "mnist.pkl.gz"
        path.write_bytes(gzip.compress(payload))
        return path

    return build


def classic_pickle(content: object) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "mnist.pkl.gz"
        path.write_bytes(gzip.compress(pickle.dumps(content, protocol=2)))
        return path

    return build


def npz(**arrays: np.ndarray) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "mnist.npz"
        with path.open("wb") as out:
            save: Callable[..., None] = np.savez
            save(out, **arrays)
        return path

    return build


def folder(mutate: Callable[[Path], None]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        x, y = random_digits(6, seed=3)
        root = write_image_folder(tmp / "pngs", {"train": (x, y)})
        mutate(root)
        return root

    return build


def _truncate_first_png(root: Path) -> None:
    first = min((root / "train").iterdir())
    first.write_bytes(first.read_bytes()[:60])


def _bad_name(root: Path) -> None:
    min((root / "train").iterdir()).rename(root / "train" / "seven.png")


def _mixed_sizes(root: Path) -> None:
    first = min((root / "train").iterdir())
    Image.new("L", (32, 32)).save(first)


def _link_outside(root: Path) -> None:
    outside = root.parent / "outside.png"
    Image.new("L", (28, 28)).save(outside)
    (root / "train" / "000099_1.png").symlink_to(outside)


x6, y6 = random_digits(6, seed=4)
xf = x6.reshape(6, -1).astype(np.float32) / 256
#: case -> (build the bad source, fragments the one-line error must hold: the file, what was
#: expected and what was found)
CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    # IDX
    "idx wrong magic": (lambda t: idx_folder(t / "s", b"\x00\x01\x08\x03" + IMAGES[4:]), ("train-images-idx3-ubyte.gz is not an IDX file", "magic number 00010803 should start with 0000")),
    "idx unknown dtype code": (lambda t: idx_folder(t / "s", b"\x00\x00\x07\x03" + IMAGES[4:], gz=False), ("train-images-idx3-ubyte has unknown IDX type code 0x07", "expected one of 0x08")),
    "idx dims do not match the length": (lambda t: idx_folder(t / "s", IMAGES[:-10], gz=False), ("train-images-idx3-ubyte has 2,358 bytes", "(3x28x28) implies 2,368")),
    "idx image and label counts disagree": (lambda t: idx_folder(t / "s", IMAGES, idx_bytes(np.array([1], np.uint8))), ("train-images-idx3-ubyte.gz has 3 images but train-labels-idx1-ubyte.gz has 1 labels",)),
    "idx header claims 2^31 images": (lambda t: idx_folder(t / "s", b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 28, 28)), ("train-images-idx3-ubyte.gz claims 2,147,483,648 items", "more than the 10,000,000")),
    "idx truncated gzip": (lambda t: _truncated_gz(t), ("train-images-idx3-ubyte.gz", "corrupt or truncated gzip data while reading images 0-2")),
    "idx .gz that is not gzip": (lambda t: _garbage_gz(t), ("Cannot decompress", "train-images-idx3-ubyte.gz: not a valid gzip file")),
    "empty file": (lambda t: _empty(t), ("empty.npz is empty",)),
    # pickle
    "pickle calling os.system": (hostile("os.system"), ("mnist.pkl.gz: it references os.system", "only numpy arrays are allowed")),
    "pickle calling builtins.eval": (hostile("builtins.eval"), ("mnist.pkl.gz: it references builtins.eval", "only numpy arrays are allowed")),
    "pickle calling subprocess.Popen": (hostile("subprocess.Popen"), ("mnist.pkl.gz: it references subprocess.Popen", "only numpy arrays are allowed")),
    "pickle of the wrong shape": (classic_pickle(((xf[:, :100], y6), (xf, y6))), ("mnist.pkl.gz: expected one image size in all splits", "found train 10x10, test 28x28")),
    "pickle with labels outside 0-9": (classic_pickle(((xf, y6 + 10), (xf, y6))), ("mnist.pkl.gz: expected train labels 0-9", f"found {y6[0] + 10} at index 0")),
    "pickle of the wrong dtype": (classic_pickle(((xf.astype(np.complex64), y6), (xf, y6))), ("mnist.pkl.gz: it builds an array of dtype complex64", "only bool, integer and float arrays are allowed")),
    # npz
    "npz with an object array": (npz(x_train=np.array([object()] * 2, dtype=object), y_train=y6, x_test=x6, y_test=y6), ("x_train from", "mnist.npz: it is an array of dtype object", "expected a numeric array")),
    "npz missing keys": (npz(x_train=x6, y_train=y6), ("mnist.npz: expected arrays x_test and y_test", "found no x_test or y_test")),
    "npz lengths disagree": (npz(x_train=x6, y_train=y6[:4], x_test=x6, y_test=y6), ("mnist.npz: expected 6 y_train labels (one per image in x_train), found 4",)),
    # image folders
    "folder with a truncated image": (folder(_truncate_first_png), ("Cannot decode image train/000000_", "pngs: image file is truncated")),
    "folder with a name that does not parse": (folder(_bad_name), ("train/seven.png in", "expected <index>_<label>.")),
    "folder with mixed image sizes": (folder(_mixed_sizes), ("train/000001_", "pngs is 28x28, expected 32x32")),
    "folder with a symlink outside": (folder(_link_outside), ("train/000099_1.png in", "outside.png, outside the folder")),
}  # fmt: skip


def _truncated_gz(tmp: Path) -> Path:
    root = idx_folder(tmp / "s", IMAGES)
    gz = root / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-15])
    return root


def _garbage_gz(tmp: Path) -> Path:
    root = idx_folder(tmp / "s", IMAGES)
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"not really gzip" * 8)
    return root


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.npz"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_1_and_the_catalog_is_unchanged(
    db_url: str, tmp_path: Path, case: str
) -> None:
    build, fragments = CASES[case]
    assert_ingest_refused(db_url, build(tmp_path), fragments)
    assert not Path("/tmp/pwned").exists()
