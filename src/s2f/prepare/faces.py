"""Finding the speaker's face in decoded clips: detect, choose, align, or say why there is none.

One :class:`SpeakerFaceFinder` serves both places where ``s2f prepare`` looks for faces
(:mod:`s2f.prepare.engine`): on a CPU inside each DataLoader worker, over the clips of the batch that
worker decoded, so that every core detects and the main process only embeds and writes; on a GPU in
the main process, over the same batch, on the device. Either way :meth:`SpeakerFaceFinder.find` runs
MTCNN once over all the batch's frames (one call per frame size; one clip at a time took 15-35% longer
here), then chooses and aligns each clip's face, and a clip ends as a :class:`FoundFace` or a reject
whose reason and detail do not depend on where it was found.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from s2f.vision.detection import Face, FaceAligner, FaceDetector, choose_face

from .rejects import FACE_NOT_AT_CENTER, FACE_TOO_SMALL, FAILED, NO_FACE, Reject
from .sources import ClipTask

__all__ = ["ClipFrames", "FoundFace", "SpeakerFaceFinder"]

# When no frame gives a usable face, report the failure that got furthest.
_FAILURE_RANK = {NO_FACE: 0, FACE_NOT_AT_CENTER: 1, FACE_TOO_SMALL: 2}


@dataclass(frozen=True)
class ClipFrames:
    """What the search for one clip's face reads.

    Attributes:
        task: The clip (its face center, its file for error details).
        frames: Its decoded frames, uint8 RGB [H, W, 3].
        frame_times: Source time of each frame, seconds.
        views: The frames shrunk for detection (:func:`s2f.vision.detection.detection_view`).
        scales: For each view, the factor from its pixels to the frame's.
    """

    task: ClipTask
    frames: Sequence[np.ndarray]
    frame_times: Sequence[float]
    views: Sequence[np.ndarray]
    scales: Sequence[float]


@dataclass
class FoundFace:
    """The speaker's face of one clip, ready for the teacher.

    Attributes:
        crop: The aligned crop, uint8 RGB [224, 224, 3].
        landmarks: Its landmarks in crop pixels, float32 [68, 2] (dlib68) or [5, 2] (mtcnn5).
        frame_time: Source time of the frame it was cut from, seconds.
    """

    crop: np.ndarray
    landmarks: np.ndarray
    frame_time: float


class SpeakerFaceFinder:
    """Detects the faces in a clip's frames, picks the speaker's and aligns it.

    It pickles (the DataLoader's spawn start method sends it to each worker): MTCNN is a small module,
    and the aligner's dlib model is loaded on first use in each process, not carried along.

    Args:
        detector: MTCNN.
        aligner: Cuts the canonical crop.
        min_face_size: Shortest side, in frame pixels, of a usable face.
        center_margin: See :func:`s2f.vision.detection.choose_face`.
    """

    def __init__(self, detector: FaceDetector, aligner: FaceAligner, *, min_face_size: float, center_margin: float):
        self.detector = detector
        self.aligner = aligner
        self.min_face_size = min_face_size
        self.center_margin = center_margin

    def _search_sizes(self, scales: Sequence[float]) -> list[float]:
        """The smallest face to look for in each detection view, in the view's pixels.

        Down to half the usable size, so that smaller faces are reported as too small rather than
        missing, and no further: MTCNN's cost grows steeply with finer searches.
        """
        return [self.min_face_size / 2 / scale for scale in scales]

    def find(self, clips: Sequence[ClipFrames]) -> list[tuple[FoundFace | Reject, float]]:
        """Each clip's face (or reject), with the seconds spent on it: its share of the one MTCNN pass over
        all the clips' frames, plus its own choice and alignment.

        An error inside MTCNN is raised, not taken for a property of one clip: it stops the run.
        """
        if not clips:
            return []
        began = time.perf_counter()
        views = [view for clip in clips for view in clip.views]
        sizes = [size for clip in clips for size in self._search_sizes(clip.scales)]
        detections = iter(self.detector.detect(views, sizes)) if views else iter(())
        share = (time.perf_counter() - began) / len(clips)
        results: list[tuple[FoundFace | Reject, float]] = []
        for clip in clips:
            frame_faces = [next(detections) for _ in clip.views]  # taken in order: keeps later clips in step
            began = time.perf_counter()
            found = self._conclude(clip, frame_faces)
            results.append((found, share + time.perf_counter() - began))
        return results

    def _conclude(self, clip: ClipFrames, frame_faces: Sequence[Sequence[Face]]) -> FoundFace | Reject:
        """The aligned speaker's face from the faces detected in each frame's view, or the clip's reject."""
        try:
            best, failure = self._choose(clip, frame_faces)
            if best is None:
                return clip.task.rejected(*failure)
            face, frame, frame_time = best
            aligned = self.aligner.align(frame, face)
        except Exception as err:  # one odd frame must not stop the run; it is reported
            return clip.task.rejected(FAILED, f"{clip.task.media}: {type(err).__name__}: {err}")
        return FoundFace(aligned.image, aligned.landmarks, frame_time)

    def _choose(
        self, clip: ClipFrames, frame_faces: Sequence[Sequence[Face]]
    ) -> tuple[tuple[Face, np.ndarray, float] | None, tuple[str, str]]:
        """The most confident usable face over the frames, or the failure that got furthest."""
        best: tuple[Face, np.ndarray, float] | None = None
        failure = (NO_FACE, "no face detected")
        views = zip(clip.frames, clip.frame_times, clip.scales, frame_faces, strict=True)
        for frame, frame_time, scale, faces in views:
            height, width = frame.shape[:2]
            choice = choose_face(
                [face.scaled(scale) for face in faces],
                (width, height),
                clip.task.center,
                min_face_size=self.min_face_size,
                center_margin=self.center_margin,
            )
            if choice.face is not None:
                if best is None or choice.face.score > best[0].score:
                    best = (choice.face, frame, frame_time)
            elif _FAILURE_RANK.get(choice.reason or "", -1) >= _FAILURE_RANK.get(failure[0], -1):
                failure = (choice.reason or NO_FACE, f"frame at {frame_time:.2f} s: {choice.detail}")
        return best, failure
