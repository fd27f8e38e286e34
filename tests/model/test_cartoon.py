"""Speech to cartoon: the cartoon follows the decoded face it is drawn from, and only where that face changes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torchvision.transforms.functional import to_pil_image

from s2f import ENCODERS, Speech2Face
from s2f.cli import main as s2f_main
from s2f.decoders.linear_face import LinearFaceDecoder
from s2f.errors import ConfigError
from s2f.model.cartoon import CARTOON_PARTS, cartoon_svg
from s2f.model.speech2face import Prediction

SIZE = 96
SKIN, HAIR, LIPS, IRIS = (205, 160, 135), (70, 45, 30), (170, 60, 70), (40, 60, 90)
# What each axis of the hand-set decoder's embedding changes: the jaw's width, the nose's, the skin's tone.
WIDER_JAW, WIDER_NOSE, DARKER_SKIN = 0, 1, 2


def _painted_face(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A face painted on the decoder's mean shape: [3, S, S] texture in [0, 1], and the skin-only mask."""
    image = Image.new("RGB", (SIZE, SIZE), (120, 130, 150))
    draw = ImageDraw.Draw(image)
    points = [tuple(p) for p in landmarks.tolist()]
    top = min(p[1] for p in points[17:27]) - 8  # the hairline, a third of the brow-to-nose height above the brows
    draw.rectangle([0, 0, SIZE, top], fill=HAIR)
    draw.polygon([*points[0:17], (points[16][0], top), (points[0][0], top)], fill=SKIN)
    skin = np.array(image) == np.array(SKIN)
    for eye in (points[36:42], points[42:48]):
        draw.polygon(eye, fill=IRIS)
    draw.polygon(points[48:60], fill=LIPS)
    skin_only = skin.all(-1) & (np.array(image) == np.array(SKIN)).all(-1)
    texture = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    return texture, skin_only


@pytest.fixture(scope="module")
def model() -> Speech2Face:
    """A tiny model whose face decoder is set by hand: three embedding axes, three known changes of the face."""
    torch.manual_seed(0)
    decoder = LinearFaceDecoder(embed_dim=64, components=1, image_size=SIZE)
    mean = decoder.mean_landmarks.numpy()
    texture, skin = _painted_face(mean)
    with torch.no_grad():
        decoder.mean_texture.copy_(texture)
        weight = torch.zeros_like(decoder.head.weight)  # [2 * 68 + 1, 64]
        centre = mean[:, 0].mean()
        for k in range(17):  # the jaw outward by 6% of the image's half-side
            weight[2 * k, WIDER_JAW] = 0.06 * float(np.sign(mean[k, 0] - centre))
        for k in range(31, 36):  # the nose's base outward from its tip
            weight[2 * k, WIDER_NOSE] = 0.05 * float(np.sign(mean[k, 0] - mean[33, 0]))
        weight[2 * 68, DARKER_SKIN] = 1.0
        decoder.head.weight.copy_(weight)
        decoder.texture_basis.copy_((-0.3 * torch.from_numpy(skin).float()).expand(3, -1, -1).reshape(1, -1))
    return Speech2Face(ENCODERS.create("s2f_cnn_tiny"), decoder, clip_seconds=1.0).eval()


def _predictions(model: Speech2Face, embeddings: torch.Tensor) -> list[Prediction]:
    faces = model.draw(embeddings)
    return [
        Prediction(embedding=e, image=to_pil_image(image), landmarks=points)
        for e, image, points in zip(embeddings, faces.image, faces.landmarks, strict=True)
    ]


def _parts(svg: str) -> dict[str, ET.Element]:
    return {element.get("id"): element for element in ET.fromstring(svg).iter() if element.get("id")}


def _points(element: ET.Element) -> np.ndarray:
    if element.get("points") is None:
        element = next(child for child in element if child.get("points"))
    return np.array([[float(v) for v in pair.split(",")] for pair in element.get("points").split()])


def _brightness(colour: str) -> float:
    return sum(int(colour[i : i + 2], 16) for i in (1, 3, 5)) / 3


def test_two_decoded_faces_give_cartoons_that_differ_where_the_faces_differ(model: Speech2Face) -> None:
    plain = torch.zeros(1, 64)
    changed = torch.zeros(1, 64)
    changed[0, [WIDER_JAW, WIDER_NOSE, DARKER_SKIN]] = 1.0
    first, second = _predictions(model, torch.cat([plain, changed]))
    a, b = _parts(first.cartoon()), _parts(second.cartoon())

    assert set(CARTOON_PARTS) <= set(a) and set(CARTOON_PARTS) <= set(b)
    face_width = [np.ptp(_points(parts["skin"])[:17, 0]) for parts in (a, b)]
    nose_width = [np.ptp(_points(parts["nose"].findall("*")[1])[:, 0]) for parts in (a, b)]
    # 6% of the half-side on each side widens a 256-px drawing by about 15 px; the nose's 5% by about 13 px.
    assert face_width[1] - face_width[0] > 10
    assert nose_width[1] - nose_width[0] > 8
    skin = [_brightness(parts["skin"].get("fill")) for parts in (a, b)]
    assert skin[0] == pytest.approx(np.mean(SKIN), abs=12)  # sampled from the face's skin, not elsewhere
    assert skin[0] - skin[1] > 40  # 30% darker skin in the decoded face
    assert _brightness(a["hair"].get("fill")) < 90 and _brightness(b["hair"].get("fill")) < 90
    # Where the decoded faces agree, so do the cartoons: the eyes sit on the same landmarks.
    for eye in ("right-eye", "left-eye"):
        np.testing.assert_allclose(_points(a[eye]), _points(b[eye]))


def test_the_cartoon_is_deterministic_and_needs_a_decoded_face(model: Speech2Face) -> None:
    (prediction,) = _predictions(model, torch.zeros(1, 64))
    assert prediction.cartoon() == prediction.cartoon() == cartoon_svg(np.array(prediction.image), prediction.landmarks)
    with pytest.raises(ConfigError, match="no face decoder"):
        Prediction(embedding=torch.zeros(64)).cartoon()
    with pytest.raises(ConfigError, match="68 landmarks"):
        cartoon_svg(prediction.image, torch.zeros(5, 2))


def test_s2f_predict_writes_the_cartoon_of_each_voice(model: Speech2Face, tmp_path: Path) -> None:
    from media import tone, write_wav

    folder = model.save_pretrained(tmp_path / "model")
    voices = [write_wav(tmp_path / f"v{i}.wav", tone(1.5, frequency)) for i, frequency in enumerate((150.0, 260.0))]
    assert s2f_main(["predict", "--model", str(folder), *map(str, voices), "--cartoon", str(tmp_path / "c.svg")]) == 0
    for index, voice in enumerate(voices):
        svg = (tmp_path / f"c_{index}.svg").read_text()
        assert svg == Speech2Face.from_pretrained(folder).predict(str(voice)).cartoon()
