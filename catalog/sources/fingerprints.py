"""Known digests of the genuine MNIST-family files, and where to fetch them.

A source *is* a genuine file when the digest of its bytes (``gz_md5``) or of its
decompressed content (``md5``/``sha256``) equals one listed here. Mirrors often
re-compress the files, so the decompressed digest is the one that survives.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownFile:
    """One canonical file of a known dataset."""

    dataset: str  # "mnist", "fashion-mnist", "kmnist"
    name: str  # canonical file name, e.g. "train-images-idx3-ubyte.gz"
    split: str  # "train" or "test"
    role: str  # "images" or "labels"
    gz_size: int | None  # bytes of the canonical .gz, when known
    gz_md5: str  # md5 of the canonical .gz
    md5: str | None = None  # md5 of the decompressed content, when known
    sha256: str | None = None  # sha256 of the decompressed content, when known


@dataclass(frozen=True)
class KnownSplit:
    """Size and per-label counts of a split of a known dataset."""

    dataset: str
    split: str
    size: int
    label_counts: tuple[int, ...]
    pixels_sha256: str | None = None  # sha256 of all pixels of the split, in index order
    labels_sha256: str | None = None  # sha256 of the labels as uint8, in index order


@dataclass(frozen=True)
class KnownDataset:
    name: str
    title: str
    mirrors: tuple[str, ...]
    files: tuple[KnownFile, ...]


MNIST_FILES = (
    KnownFile(
        "mnist", "train-images-idx3-ubyte.gz", "train", "images", 9_912_422,
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    KnownFile(
        "mnist", "train-labels-idx1-ubyte.gz", "train", "labels", 28_881,
        "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    KnownFile(
        "mnist", "t10k-images-idx3-ubyte.gz", "test", "images", 1_648_877,
        "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    KnownFile(
        "mnist", "t10k-labels-idx1-ubyte.gz", "test", "labels", 4_542,
        "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
)  # fmt: skip

FASHION_FILES = (
    KnownFile("fashion-mnist", "train-images-idx3-ubyte.gz", "train", "images", None, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    KnownFile("fashion-mnist", "train-labels-idx1-ubyte.gz", "train", "labels", None, "25c81989df183df01b3e8a0aad5dffbe"),
    KnownFile("fashion-mnist", "t10k-images-idx3-ubyte.gz", "test", "images", None, "bef4ecab320f06d8554ea6380940ec79"),
    KnownFile("fashion-mnist", "t10k-labels-idx1-ubyte.gz", "test", "labels", None, "bb300cfdad3c16e7a12a480ee83cd310"),
)  # fmt: skip

KMNIST_FILES = (
    KnownFile("kmnist", "train-images-idx3-ubyte.gz", "train", "images", None, "bdb82020997e1d708af4cf47b453dcf7"),
    KnownFile("kmnist", "train-labels-idx1-ubyte.gz", "train", "labels", None, "e144d726b3acfaa3e44228e80efcd344"),
    KnownFile("kmnist", "t10k-images-idx3-ubyte.gz", "test", "images", None, "5c965bf0a639b31b8f53240b1b52f4d7"),
    KnownFile("kmnist", "t10k-labels-idx1-ubyte.gz", "test", "labels", None, "7320c461ea6c1c855c0b718fb2a4b134"),
)  # fmt: skip

# Kuzushiji-49 npz files, as the KMNIST repository publishes them (md5 of each file).
K49_FILES = (
    KnownFile("k49", "k49-train-imgs.npz", "train", "images", None, "7ac088b20481cf51dcd01ceaab89d821"),
    KnownFile("k49", "k49-train-labels.npz", "train", "labels", None, "44a8e1b893f81e63ff38d73cad420f7a"),
    KnownFile("k49", "k49-test-imgs.npz", "test", "images", None, "d352e201d846ce6b94f42c990966f374"),
    KnownFile("k49", "k49-test-labels.npz", "test", "labels", None, "4da6f7a62e67a832d5eb1bd85c5ee448"),
)  # fmt: skip

# QMNIST (github.com/facebookresearch/qmnist): md5 of each published file.
QMNIST_FILES = (
    KnownFile("qmnist", "qmnist-train-images-idx3-ubyte.gz", "train", "images", None, "ed72d4157d28c017586c42bc6afe6370"),
    KnownFile("qmnist", "qmnist-train-labels-idx2-int.gz", "train", "labels", None, "0058f8dd561b90ffdd0f734c6a30e5e4"),
    KnownFile("qmnist", "qmnist-test-images-idx3-ubyte.gz", "test", "images", None, "1394631089c404de565df7b7aeaf9412"),
    KnownFile("qmnist", "qmnist-test-labels-idx2-int.gz", "test", "labels", None, "5b5b05890a5e13444e108efe57b788aa"),
)  # fmt: skip

# EMNIST's one archive; each of its splits is read from it (--subset).
EMNIST_FILES = (
    KnownFile("emnist", "gzip.zip", "all", "archive", None, "58c8d27c78d21e728a6bc7b3cc06412e"),
)

#: Genuine files recognised at ingest but not downloaded by default.
IDENTIFY_ONLY = (
    KnownFile("qmnist", "xnist-images-idx3-ubyte.xz", "xnist", "images", None, "7f124b3b8ab81486c9d8c2749c17f834"),
    KnownFile("qmnist", "xnist-labels-idx2-int.xz", "xnist", "labels", None, "5ed0e788978e45d4a8bd4b7caec3d79d"),
)  # fmt: skip

KNOWN_DATASETS: dict[str, KnownDataset] = {
    "mnist": KnownDataset(
        "mnist",
        "MNIST",
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        MNIST_FILES,
    ),
    "fashion-mnist": KnownDataset(
        "fashion-mnist",
        "Fashion-MNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        FASHION_FILES,
    ),
    "kmnist": KnownDataset(
        "kmnist",
        "Kuzushiji-MNIST",
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        KMNIST_FILES,
    ),
    "k49": KnownDataset(
        "k49", "Kuzushiji-49", ("http://codh.rois.ac.jp/kmnist/dataset/k49/",), K49_FILES
    ),
    "qmnist": KnownDataset(
        "qmnist",
        "QMNIST",
        ("https://raw.githubusercontent.com/facebookresearch/qmnist/master/",),
        QMNIST_FILES,
    ),
    "emnist": KnownDataset(
        "emnist",
        "EMNIST",
        (
            "https://biometrics.nist.gov/cs_links/EMNIST/",
            "http://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/",
        ),
        EMNIST_FILES,
    ),
}

KNOWN_SPLITS: tuple[KnownSplit, ...] = (
    KnownSplit(
        "mnist", "train", 60_000,
        (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
        "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    ),
    KnownSplit(
        "mnist", "test", 10_000,
        (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
        "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
        "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    ),
    KnownSplit("fashion-mnist", "train", 60_000, (6000,) * 10),
    KnownSplit("fashion-mnist", "test", 10_000, (1000,) * 10),
    KnownSplit("kmnist", "train", 60_000, (6000,) * 10),
    KnownSplit("kmnist", "test", 10_000, (1000,) * 10),
)  # fmt: skip


def all_known_files() -> tuple[KnownFile, ...]:
    return (*(f for d in KNOWN_DATASETS.values() for f in d.files), *IDENTIFY_ONLY)


def identify_file(*, md5: str | None = None, gz_md5: str | None = None) -> KnownFile | None:
    """Return the genuine file whose digest matches, or None.

    >>> identify_file(md5="27ae3e4e09519cfbb04c329615203637").name
    't10k-labels-idx1-ubyte.gz'
    >>> identify_file(md5="0" * 32) is None
    True
    """
    for known in all_known_files():
        if md5 is not None and known.md5 == md5:
            return known
        if gz_md5 is not None and known.gz_md5 == gz_md5:
            return known
    return None


def known_split(dataset: str, split: str) -> KnownSplit | None:
    for known in KNOWN_SPLITS:
        if known.dataset == dataset and known.split == split:
            return known
    return None
