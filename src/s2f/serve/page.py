"""The HTML of ``s2f serve``'s answers: every image inline (data URIs), so nothing is written to disk.

Each piece has an ``id`` (``s2f-face``, ``s2f-cartoon``, ``s2f-nearest``, ``s2f-angle``,
``s2f-spectrogram``, ``s2f-error``) that the browser tests and anyone scripting the page can find.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .voice_request import Answer, Limits

__all__ = ["answer_html", "error_html", "intro_markdown"]

STYLE = (
    "<style>#s2f-answer{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}"
    "#s2f-answer figure{margin:0}#s2f-answer figcaption{font-size:0.85em;color:#666;max-width:260px}"
    "#s2f-nearest{display:flex;flex-wrap:wrap;gap:8px}#s2f-nearest figure{text-align:center}"
    "#s2f-nearest img{width:96px;height:96px;border-radius:4px}</style>"
)


def intro_markdown(limits: Limits, clip_seconds: float, gallery: str | None) -> str:
    """What the page says above the recorder: what happens to the voice, and the limits."""
    where = f"the gallery ({gallery})" if gallery else "no gallery (start with --gallery SHARDS for nearest faces)"
    return (
        "# s2f: the face behind a voice\n"
        "Record or upload speech (wav, flac, mp3, m4a, mp4). The model hears the first "
        f"**{clip_seconds:g} s**; a shorter clip is looped to that length, as in training. "
        f"Limits: {limits.min_seconds:g} s to {limits.max_seconds / 60:g} min, at most {limits.max_upload_mb:g} MB. "
        f"The predicted face is compared with {where}. Nothing is kept: the upload is deleted once answered.\n\n"
        "The face is an average-looking face consistent with the voice, not the speaker's true face "
        "(see the model card below)."
    )


def answer_html(answer: Answer) -> str:
    """The face, the cartoon, the nearest faces, the angle to the mean face and the spectrogram."""
    prediction = answer.prediction
    note = (
        f"heard the first {answer.clip_seconds:g} s of {answer.seconds:.1f} s"
        if answer.seconds >= answer.clip_seconds
        else f"{answer.seconds:.1f} s, looped to {answer.clip_seconds:g} s"
    )
    angle = (
        "" if answer.angle_to_mean_deg is None
        else f'<p id="s2f-angle">angle of the predicted embedding to the mean face: '
        f"<b>{answer.angle_to_mean_deg:.1f}°</b> (0° would be the mean face itself)</p>"
    )  # fmt: skip
    return (
        f'{STYLE}<div id="s2f-answer">'
        f'<figure><img id="s2f-face" alt="decoded face" width="224" height="224" '
        f'src="{_png_data_uri(prediction.image)}"/><figcaption>the decoded face ({note})</figcaption></figure>'
        f'<figure><div id="s2f-cartoon" style="width:224px;height:224px">{_sized(answer.cartoon)}</div>'
        "<figcaption>the cartoon: shapes from the decoded landmarks, colours from the decoded face</figcaption>"
        f"</figure>{_nearest_html(answer)}</div>{angle}"
        f'<figure><img id="s2f-spectrogram" alt="spectrogram" src="{answer.spectrogram_png}"/>'
        "<figcaption>the spectrogram the model heard (time left to right, low pitch at the bottom)</figcaption>"
        "</figure>"
    )


def error_html(message: str) -> str:
    """One line saying what was wrong with the input."""
    return f'<p id="s2f-error" style="color:#b00020">{html.escape(message)}</p>'


def _nearest_html(answer: Answer) -> str:
    if not answer.neighbours:
        return '<div id="s2f-nearest"><p>no gallery: start s2f serve with --gallery SHARDS</p></div>'
    k, size = len(answer.neighbours), answer.gallery_size
    faces = "".join(
        f'<figure><img class="s2f-neighbour" alt="{html.escape(n.speaker_id)}" src="{n.thumbnail}"/>'
        f"<figcaption>{html.escape(n.speaker_id)}<br>cos {n.similarity:.2f}</figcaption></figure>"
        for n in answer.neighbours
    )
    chance = (
        f"chance that a given face is among these {k}: {k / size:.0%}; "
        f"a face drawn at random scores cos {answer.random_similarity:.2f} on average"
    )
    return (
        f"<div><p>the {k} nearest of {size} gallery faces (cosine similarity of the teacher embeddings)</p>"
        f'<div id="s2f-nearest">{faces}</div><p style="font-size:0.85em;color:#666">{chance}</p></div>'
    )


def _sized(svg: str) -> str:
    # The cartoon's own width and height give way to its box, so it scales with the page.
    return svg.replace('width="256" height="256"', 'width="100%" height="100%"', 1)


def _png_data_uri(image: object) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # type: ignore[attr-defined]
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
