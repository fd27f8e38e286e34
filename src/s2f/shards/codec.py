"""How each field of a row is stored: int16 audio as FLAC or raw PCM, the face as a JPEG, checked scalars and
metadata as JSON.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from s2f.errors import ShardFormatError

from .format import JPEG_QUALITY, SAMPLE_RATE

# --------------------------------------------------------------------------------------------- encoding


def _encode_audio(samples: np.ndarray, codec: str) -> bytes:
    if codec == "pcm16":
        return samples.astype("<i2", copy=False).tobytes()
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _decode_audio(data: bytes | memoryview, codec: str, num_samples: int, clip_id: str) -> np.ndarray:
    if codec == "pcm16":
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    else:
        import soundfile

        samples, _ = soundfile.read(io.BytesIO(bytes(data)), dtype="int16", always_2d=False)
    if samples.shape != (num_samples,):
        raise ShardFormatError(
            f"clip {clip_id!r}: audio decodes to {samples.shape[0]} samples but the row says {num_samples}; "
            "the shard is corrupt: re-run `s2f prepare`"
        )
    return samples


def _encode_face(face: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(face, mode="RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _decode_face(data: bytes | memoryview) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(bytes(data))) as image:
        return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy, unlike np.asarray


def _to_int16(audio: np.ndarray, clip_id: str) -> np.ndarray:
    if audio.dtype == np.int16:
        return np.ascontiguousarray(audio)
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"clip {clip_id!r}: audio must be int16 or float in [-1, 1], got dtype {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ValueError(f"clip {clip_id!r}: audio holds NaN or infinite samples")
    peak = float(np.abs(audio).max())
    if peak > 1.0:
        raise ValueError(f"clip {clip_id!r}: float audio must lie in [-1, 1], peak is {peak:.3f}")
    # x * 32768 mirrors soundfile's int16 <-> float convention, so float audio that came from int16
    # (every WAV/FLAC that load_audio reads) gets back its exact original samples.
    return np.clip(np.round(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _finite_float(value: Any, name: str, clip_id: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"clip {clip_id!r}: {name} must be a number, got {value!r}") from err
    if not math.isfinite(number):
        raise ValueError(f"clip {clip_id!r}: {name} must be finite, got {value!r}")
    return number


def _metadata_json(metadata: Mapping[str, Any], clip_id: str) -> str:
    if not isinstance(metadata, Mapping):
        raise ValueError(f"clip {clip_id!r}: metadata must be a dict, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"clip {clip_id!r}: metadata keys must be strings, got {key!r}")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValueError(
                f"clip {clip_id!r}: metadata[{key!r}] must be a string, number, bool or None, "
                f"got {type(value).__name__}"
            )
    try:
        return json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"clip {clip_id!r}: metadata is not JSON-serializable ({err})") from err
