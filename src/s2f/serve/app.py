"""The web page of ``s2f serve``: a Gradio app around :class:`~s2f.serve.voice_request.FaceService`.

Gradio is the convention of the field's model demos (both public Speech2Face demos use it): it gives
a microphone recorder and an uploader, a queue that lets concurrent users wait their turn instead of
crashing the worker, and an HTTP API the tests and the load benchmark drive.

Uploads land in a folder of their own (``GRADIO_TEMP_DIR``, made per server) and each one is deleted
as soon as its request is answered; the answer's images are inline data URIs, so nothing else is
written. Gradio serves files only from that folder, so no path from the browser reaches others.
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2f.errors import S2FError

from .page import answer_html, error_html, intro_markdown

if TYPE_CHECKING:
    from .voice_request import FaceService

__all__ = ["build_app", "upload_folder"]

# Answers kept for identical uploads still in the queue (each up to a few hundred kB of inline images).
RECENT_ANSWERS = 32


def upload_folder() -> Path:
    """A fresh folder for this server's uploads, named in ``GRADIO_TEMP_DIR`` before Gradio is imported."""
    folder = Path(tempfile.mkdtemp(prefix="s2f-serve-"))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    return folder


def build_app(service: FaceService, card: str, uploads: Path) -> Any:
    """The page: recorder/uploader, the answer, the model card one click away.

    Args:
        service: Answers one voice.
        card: The model card (Markdown).
        uploads: The folder uploads land in; each request's file is deleted once it is answered.
    """
    import gradio as gr

    gallery = service.gallery.source if service.gallery is not None else None
    # Gradio names an upload by its content, so identical uploads waiting in the queue share one file,
    # which the first answer deletes: the others get that answer (same bytes, same face).
    recent: OrderedDict[str, str] = OrderedDict()

    def answer(path: str | None) -> str:
        if not path:
            return error_html("record or upload a voice first")
        if path in recent and not Path(path).exists():
            return recent[path]
        try:
            recent[path] = answer_html(service.answer(path))
            while len(recent) > RECENT_ANSWERS:
                recent.popitem(last=False)
            return recent[path]
        except S2FError as exc:
            return error_html(str(exc).splitlines()[0])
        except Exception as exc:  # one bad request must never take the page down for the next one
            return error_html(f"this input could not be turned into a face ({type(exc).__name__})")
        finally:
            _remove_upload(path, uploads)

    with gr.Blocks(title="s2f: the face behind a voice", delete_cache=(300, 300)) as app:
        gr.Markdown(intro_markdown(service.limits, service.model.clip_seconds, gallery))
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="your voice", elem_id="s2f-audio")
        run = gr.Button("Show the face", variant="primary", elem_id="s2f-run")
        result = gr.HTML(elem_id="s2f-result")
        with gr.Accordion("Model card", open=False, elem_id="s2f-card"):
            gr.Markdown(card)
        run.click(answer, inputs=audio, outputs=result, api_name="predict", concurrency_limit=1)
    return app.queue(default_concurrency_limit=1, max_size=256)


def _remove_upload(path: str | None, uploads: Path) -> None:
    """Deletes the request's file and its folder, when they lie in the upload folder (never a file elsewhere)."""
    if not path:
        return
    file = Path(path).resolve()
    root = uploads.resolve()
    if root not in file.parents:
        return
    file.unlink(missing_ok=True)
    folder = file.parent
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
