"""The pickle reader: round trips, pixel scaling, Python 2 files, and hostile pickles."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from builders import random_digits, traced_peak, write_pickle_gz, write_py2_pickle_gz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.errors import CatalogError, SourceFormatError, UnsafePickleError
from catalog.sources import BATCH_SIZE, Decoded
from catalog.sources import classic_pickle as pickle_source
from catalog.sources.classic_pickle import NOTE_255, NOTE_256, read_pickle

X, Y = random_digits(40, seed=7)
SPLITS = {"train": (X[:20], Y[:20]), "val": (X[20:28], Y[20:28]), "test": (X[28:], Y[28:])}


def collect(decoded: Decoded) -> dict[str, tuple[npt.NDArray[Any], ...]]:
    """Return split -> (indices, labels, pixels) over all batches."""
    parts: dict[str, list[tuple[npt.NDArray[Any], ...]]] = {}
    for batch in decoded.batches:
        assert batch.pixels.dtype == np.uint8
        assert batch.pixels.flags.c_contiguous
        assert len(batch.indices) <= BATCH_SIZE
        parts.setdefault(batch.split, []).append((batch.indices, batch.labels, batch.pixels))
    return {
        split: tuple(np.concatenate([p[i] for p in items]) for i in range(3))
        for split, items in parts.items()
    }


def assert_round_trip(
    decoded: Decoded, splits: dict[str, tuple[npt.NDArray[Any], npt.NDArray[Any]]]
) -> None:
    got = collect(decoded)
    assert list(decoded.counts) == list(splits)
    for split, (pixels, labels) in splits.items():
        indices, got_labels, got_pixels = got[split]
        assert decoded.counts[split] == len(pixels)
        np.testing.assert_array_equal(indices, np.arange(len(pixels)))
        np.testing.assert_array_equal(got_labels, labels)
        np.testing.assert_array_equal(got_pixels, pixels)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_round_trip_three_splits(tmp_path: Path, protocol: int) -> None:
    path = write_pickle_gz(tmp_path / "mnist.pkl.gz", SPLITS, protocol=protocol)
    decoded = read_pickle(path)
    assert decoded.format == "pickle"
    assert_round_trip(decoded, SPLITS)
    [source] = decoded.files
    content = gzip.decompress(path.read_bytes())
    assert source.sha256 == hashlib.sha256(content).hexdigest()
    assert source.md5 == hashlib.md5(content).hexdigest()
    assert source.size == path.stat().st_size
    assert source.uri == str(path.resolve())
    assert source.format == "pickle.gz"
    assert source.note == NOTE_256


def test_two_splits_plain_pickle_scaled_by_255(tmp_path: Path) -> None:
    splits = {"train": SPLITS["train"], "test": SPLITS["test"]}
    path = write_pickle_gz(tmp_path / "mnist.pkl", splits, scale=255, gz=False)
    decoded = read_pickle(path)
    assert_round_trip(decoded, splits)
    assert decoded.files[0].format == "pickle"
    assert decoded.files[0].note == NOTE_255
    assert decoded.files[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_value_one_is_not_scaled_by_256(tmp_path: Path) -> None:
    # 1.0 is 256/256: scaling by 256 would overflow uint8, so 255 is used.
    x = np.array([[0.0, 0.5, 1.0, 0.25]], dtype=np.float32)
    path = tmp_path / "one.pkl"
    path.write_bytes(pickle.dumps(((x, np.array([3])), (x, np.array([4])))))
    decoded = read_pickle(path)
    pixels = collect(decoded)["train"][2]
    np.testing.assert_array_equal(pixels.reshape(-1), [0, 128, 255, 64])
    assert decoded.files[0].note == NOTE_255


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_square_images_and_uint8(tmp_path: Path, dtype: type) -> None:
    pixels = X[:6, :16, :16]
    x = pixels if dtype is np.uint8 else pixels.astype(dtype) / 256
    path = tmp_path / "small.pkl"
    path.write_bytes(pickle.dumps(((x, Y[:6]), (x[:2].reshape(2, 256), Y[:2])), protocol=4))
    decoded = read_pickle(path)
    assert_round_trip(decoded, {"train": (pixels, Y[:6]), "test": (pixels[:2], Y[:2])})
    assert decoded.files[0].note == (None if dtype is np.uint8 else NOTE_256)


def test_python2_latin1_pickle(tmp_path: Path) -> None:
    floats = [
        (X[i : i + 10].reshape(10, 784).astype(np.float32) / 256, Y[i : i + 10])
        for i in (0, 10, 20)
    ]
    path = write_py2_pickle_gz(tmp_path / "mnist.pkl.gz", floats)
    with pytest.raises(UnicodeDecodeError):  # what the standard loader does without latin1
        pickle.loads(gzip.decompress(path.read_bytes()))
    decoded = read_pickle(path)
    expected = {
        "train": (X[:10], Y[:10]),
        "val": (X[10:20], Y[10:20]),
        "test": (X[20:30], Y[20:30]),
    }
    assert_round_trip(decoded, expected)
    assert decoded.files[0].note == NOTE_256


def test_more_than_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickle_source, "BATCH_SIZE", 7)
    path = write_pickle_gz(tmp_path / "mnist.pkl.gz", SPLITS)
    batches = list(read_pickle(path).batches)
    assert [len(b.indices) for b in batches if b.split == "train"] == [7, 7, 6]
    np.testing.assert_array_equal(batches[1].indices, np.arange(7, 14))


# Hostile pickles ------------------------------------------------------------------


class Reduce:
    """Pickles as a call of ``func(*args)``, as an attacker would write it."""

    def __init__(self, func: object, *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def global_call(module: str, name: str, *args: str) -> bytes:
    """Protocol-0 pickle of ``module.name(*args)`` without importing it here."""
    body = "".join(f"V{arg}\n" for arg in args)
    return f"c{module}\n{name}\n({body}tR.".encode()


def hostile_payloads(sentinel: Path) -> dict[str, bytes]:
    touch = f"touch {sentinel}"
    return {
        "os.system": global_call("os", "system", touch),
        "posix.system": pickle.dumps(Reduce(__import__("os").system, touch), protocol=2),
        "builtins.eval": global_call("builtins", "eval", f"open({str(sentinel)!r}, 'w')"),
        "subprocess.Popen": global_call("subprocess", "Popen", touch),
        "numpy.load": global_call("numpy", "load", str(sentinel)),
        "numpy.core.multiarray.fromfile": global_call("numpy.core.multiarray", "fromfile", "x"),
        "numpy.testing._private.utils.runstring": global_call(
            "numpy.testing._private.utils", "runstring", f"open({str(sentinel)!r}, 'w')"
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "posix.system",
        "builtins.eval",
        "subprocess.Popen",
        "numpy.load",
        "numpy.core.multiarray.fromfile",
        "numpy.testing._private.utils.runstring",
    ],
)
@pytest.mark.parametrize("gz", [True, False])
def test_hostile_pickle_refused_and_nothing_runs(tmp_path: Path, name: str, gz: bool) -> None:
    sentinel = tmp_path / "pwned"
    payload = hostile_payloads(sentinel)[name]
    # A tuple around the payload, as a real attack would hide it among arrays.
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(payload) if gz else payload)
    module, _, attr = name.rpartition(".")
    expected = (
        f"Refusing to unpickle {path}: it references {module}.{attr}, "
        "but only numpy arrays are allowed"
    )
    with pytest.raises(UnsafePickleError, match=re.escape(expected)):
        read_pickle(path)
    assert not sentinel.exists()


def test_object_array_refused(tmp_path: Path) -> None:
    x = np.array([[0.5] * 4, [None] * 4], dtype=object)
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps(((x, np.array([1, 2])), (x, np.array([1, 2]))), protocol=2))
    with pytest.raises(UnsafePickleError, match="dtype object"):
        read_pickle(path)


def test_calling_ndarray_directly_refused(tmp_path: Path) -> None:
    # ndarray((10**9,), 'f8') would allocate 8 GB of uninitialised memory.
    path = tmp_path / "alloc.pkl"
    path.write_bytes(b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85X\x02\x00\x00\x00f8\x86R.")
    with pytest.raises(UnsafePickleError, match=re.escape("calls numpy.ndarray directly")):
        read_pickle(path)


def test_dtype_flags_in_the_pickle_are_ignored(tmp_path: Path) -> None:
    # numpy's own dtype __setstate__ would set "holds objects" flags on float64.
    x = np.zeros((1, 784))
    data = pickle.dumps(((x, np.array([1])), (x, np.array([2]))), protocol=2)
    flagged = data.replace(b"J\xff\xff\xff\xffK\x00t", b"J\xff\xff\xff\xffK?t")
    assert flagged != data
    path = tmp_path / "flags.pkl"
    path.write_bytes(flagged)
    decoded = read_pickle(path)
    assert_round_trip(
        decoded,
        {
            "train": (x.reshape(1, 28, 28), np.array([1])),
            "test": (x.reshape(1, 28, 28), np.array([2])),
        },
    )


def test_structured_dtype_state_refused(tmp_path: Path) -> None:
    data = pickle.dumps(np.zeros(3), protocol=2).replace(b"NNNJ", b"N(K\x01tNJ", 1)
    path = tmp_path / "fields.pkl"
    path.write_bytes(data)
    with pytest.raises(SourceFormatError, match="expected the state of a plain number dtype"):
        read_pickle(path)


def test_codecs_other_than_latin1_refused(tmp_path: Path) -> None:
    path = tmp_path / "codec.pkl"
    path.write_bytes(global_call("_codecs", "encode", "abc", "hex"))
    with pytest.raises(UnsafePickleError, match="only latin1 byte strings are allowed"):
        read_pickle(path)


def test_array_data_must_match_its_shape(tmp_path: Path) -> None:
    # A state claiming 10**9 elements with 12 bytes of data must not allocate.
    data = pickle.dumps(np.zeros(3, dtype=np.float32), protocol=2)
    data = data.replace(b"K\x03\x85", b"J\x00\xca\x9a;\x85")
    path = tmp_path / "big.pkl"
    path.write_bytes(data)
    with pytest.raises(SourceFormatError, match=re.escape("needs 4000000000 bytes, found 12")):
        read_pickle(path)


#: Reads a pickle under an address-space limit 256 MiB above what the process
#: already maps, so an allocation the size of a claim fails instead of swapping;
#: prints the error and the peak of traced allocations as JSON.
CLAIM_PROBE = """
import json, resource, sys, tracemalloc
from pathlib import Path
from catalog.errors import CatalogError
from catalog.sources.classic_pickle import read_pickle
with open("/proc/self/statm") as statm:
    mapped = int(statm.read().split()[0]) * resource.getpagesize()
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (mapped + 256 * 2**20, hard))
tracemalloc.start()
try:
    read_pickle(Path(sys.argv[1]))
    result = {"error": None}
except CatalogError as exc:
    result = {"error": type(exc).__name__, "message": str(exc)}
result["peak"] = tracemalloc.get_traced_memory()[1]
print(json.dumps(result))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("content", "claim"),
    [
        # LONG_BINPUT 2**31 - 1: the C unpickler would grow its memo to 16 GB for it.
        (b"\x80\x02Nr\xff\xff\xff\x7f.", "expected a memo index of at most 0 at byte 3, found 2147483647"),
        # BYTEARRAY8 claiming 64 GiB with 4 bytes behind it: the unpickler allocates before reading.
        (b"\x80\x05\x96\x00\x00\x00\x00\x10\x00\x00\x00abc.", "expected 68719476736 bytes in a bytearray8, but only 4 remain"),
    ],
)  # fmt: skip
def test_claims_cost_only_what_the_file_holds(tmp_path: Path, content: bytes, claim: str) -> None:
    path = tmp_path / "claim.pkl"
    path.write_bytes(content)
    root = Path(__file__).parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, "-c", CLAIM_PROBE, str(path)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr  # a MemoryError escaping would fail here
    result = json.loads(run.stdout)
    # The refusal names the claim, so it came from the check, not from a failed allocation.
    assert result["error"] == "SourceFormatError"
    assert str(path) in result["message"]
    assert claim in result["message"]
    assert result["peak"] < 8 * 2**20


def test_decompressed_size_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickle_source, "MAX_PICKLE_BYTES", 1000)
    path = write_pickle_gz(tmp_path / "mnist.pkl.gz", SPLITS)
    with pytest.raises(SourceFormatError, match="expected at most 1000 bytes"):
        read_pickle(path)


# Malformed content ------------------------------------------------------------


def write(path: Path, obj: object) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


FLOATS = X[:4].reshape(4, 784).astype(np.float32) / 256
LABELS = Y[:4]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"train": 1}, "expected a tuple of 2 or 3 (images, labels) pairs, found a dict"),
        (((FLOATS, LABELS),) * 4, "found a tuple of 4"),
        (
            ((FLOATS, LABELS, LABELS), (FLOATS, LABELS)),
            "expected the train entry to be an (images, labels) pair",
        ),
        (
            ((FLOATS.tolist(), LABELS), (FLOATS, LABELS)),
            "expected train images as a numpy array, found a list",
        ),
        (((FLOATS[:, :783], LABELS), (FLOATS, LABELS)), "found (4, 783)"),
        (((FLOATS.reshape(-1), LABELS), (FLOATS, LABELS)), "found (3136,)"),
        (
            ((FLOATS.astype(np.int32), LABELS), (FLOATS, LABELS)),
            "expected float or uint8 train images, found dtype int32",
        ),
        (
            ((FLOATS, LABELS[:3]), (FLOATS, LABELS)),
            "expected 4 train labels (one per image in train images), found 3",
        ),
        (
            ((FLOATS, LABELS.astype(np.float64)), (FLOATS, LABELS)),
            "expected train labels as integers",
        ),
        (
            ((FLOATS, np.array([1, 2, 10, 3])), (FLOATS, LABELS)),
            "expected train labels 0-9, found 10 at index 2",
        ),
        (
            ((FLOATS, LABELS), (FLOATS, np.array([1, -1, 0, 3]))),
            "expected test labels 0-9, found -1 at index 1",
        ),
        (
            ((FLOATS, LABELS), (FLOATS[:, :400].reshape(4, 20, 20), LABELS)),
            "train 28x28, test 20x20",
        ),
    ],
)
def test_malformed_content(tmp_path: Path, obj: object, message: str) -> None:
    path = write(tmp_path / "bad.pkl", obj)
    with pytest.raises(SourceFormatError, match=re.escape(f"Invalid pickle {path}: ")) as info:
        read_pickle(path)
    assert message in str(info.value)


@pytest.mark.parametrize(("value", "shown"), [(np.nan, "nan"), (1.5, "1.5"), (-0.25, "-0.25")])
def test_pixel_values_outside_unit_range(tmp_path: Path, value: float, shown: str) -> None:
    floats = FLOATS.copy()
    floats[2, 100] = value
    path = write(tmp_path / "bad.pkl", ((FLOATS, LABELS), (floats, LABELS)))
    expected = f"expected test pixel values in [0, 1], found {shown} in image 2"
    with pytest.raises(SourceFormatError, match=re.escape(expected)):
        read_pickle(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "Cannot unpickle {path}: ValueError: pickle exhausted before seeing STOP"),
        (
            b"\x80\x02K\x01",
            "Cannot unpickle {path}: ValueError: pickle exhausted before seeing STOP",
        ),
        (
            pickle.dumps(((FLOATS, LABELS), (FLOATS, LABELS))) + b"extra",
            "Invalid pickle {path}: expected the file to end after the pickle, found more data",
        ),
    ],
)
def test_truncated_or_trailing_data(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(SourceFormatError, match=re.escape(message.format(path=path))):
        read_pickle(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    good = write_pickle_gz(tmp_path / "good.pkl.gz", SPLITS)
    path = tmp_path / "cut.pkl.gz"
    path.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(
        SourceFormatError,
        match=re.escape(f"Cannot decompress {path}: corrupt or truncated gzip data"),
    ):
        read_pickle(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pkl"
    with pytest.raises(
        SourceFormatError, match=re.escape(f"Cannot read {path}: FileNotFoundError")
    ):
        read_pickle(path)


# Properties ---------------------------------------------------------------------

SMALL = pickle.dumps(((FLOATS[:2], LABELS[:2]), (FLOATS[2:], LABELS[2:])), protocol=2)
SMALL_5 = pickle.dumps(((FLOATS[:2], LABELS[:2]), (FLOATS[2:], LABELS[2:])), protocol=5)


def read_fully(path: Path) -> None:
    """Read ``path``; only a full Decoded or a CatalogError may come out, with no large allocation."""
    error = ""
    with traced_peak() as peak:
        try:
            decoded = read_pickle(path)
            for batch in decoded.batches:
                assert batch.pixels.dtype == np.uint8
                assert batch.labels.min(initial=0) >= 0
                assert batch.labels.max(initial=0) <= 9
        except CatalogError as exc:
            error = str(exc)
    assert "MemoryError" not in error  # a large allocation that failed
    assert peak[0] < 16 * 2**20


PROPERTY = settings(
    max_examples=150,
    deadline=1000,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(content=st.binary(max_size=400))
def test_random_bytes_give_decoded_or_catalog_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "random.pkl"
    path.write_bytes(content)
    read_fully(path)
    path.write_bytes(b"\x80\x02" + content)
    read_fully(path)


@PROPERTY
@given(
    base=st.sampled_from([SMALL, SMALL_5]),
    edits=st.lists(
        st.tuples(st.integers(0, len(SMALL) - 1), st.integers(0, 255), st.sampled_from("sid")),
        min_size=1,
        max_size=6,
    ),
    gz=st.booleans(),
)
def test_mutated_pickles_give_decoded_or_catalog_error(
    tmp_path: Path, base: bytes, edits: list[tuple[int, int, str]], gz: bool
) -> None:
    data = bytearray(base)
    for position, value, kind in edits:
        at = position % max(len(data), 1)
        if kind == "s":
            data[at : at + 1] = bytes([value])
        elif kind == "i":
            data[at:at] = bytes([value])
        else:
            del data[at : at + 1]
    path = tmp_path / "mutated.pkl"
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    read_fully(path)
