"""``s2f serve [--model DIR] [--gallery SHARDS] [--host 127.0.0.1] [--port 7860]``: the face behind a voice,
in a browser.

Without ``--model`` it serves what ``s2f demo`` left in ``runs/demo`` (the model and, as the gallery,
its shards' test split), and says how to make one when there is none. ``--model`` may name a demo's
folder (``s2f demo --out OUT``) or its ``model/``; either way, without ``--gallery`` the demo's own
held-out faces (``OUT/shards``, test split) are the gallery.
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
from pathlib import Path

from s2f.errors import ConfigError

from ._options import FunctionOptions
from .command_parser import CommandParser, Option, build_parser, parse
from .inference_options import inference_options, inference_settings

__all__ = ["demo_gallery", "main", "parser"]

DEMO_MODEL, DEMO_SHARDS = Path("runs/demo/model"), Path("runs/demo/shards")


def parser() -> CommandParser:
    """The options of ``s2f serve``."""
    return _parser(inference_options())


def _parser(inference: FunctionOptions) -> CommandParser:
    from s2f.serve import Limits

    limits = Limits()
    return build_parser(
        "s2f serve",
        "A local web page: record or upload speech, see the decoded face, its cartoon and the nearest "
        "gallery faces. Binds to 127.0.0.1 (this machine only) unless --host says otherwise.",
        Option(
            "model", "saved model folder with a face decoder", names=("--model", "-m"), shown_default=str(DEMO_MODEL)
        ),
        Option(
            "gallery",
            "shard root whose faces are compared with predictions",
            shown_default=f"with the demo model: {DEMO_SHARDS}",
        ),
        Option("gallery_split", "the gallery's split", default="test"),
        Option("host", "address to bind (127.0.0.1: this machine only)", default="127.0.0.1"),
        Option("port", "port", type=int, default=7860),
        Option("top_k", "nearest gallery faces shown", type=int, default=5),
        Option("max_upload_mb", "largest upload, MB", type=float, default=limits.max_upload_mb),
        Option("max_seconds", "longest recording, seconds", type=float, default=limits.max_seconds),
        Option("device", "torch device", default="cpu"),
        inference,
        config_file=True,
    )


def main(args: list[str]) -> int:
    """Runs ``s2f serve ARGS`` until interrupted; returns the exit status."""
    inference = inference_options()
    options = parse(_parser(inference), args)
    model_dir, gallery_root = _model_and_gallery(options.model, options.gallery)

    from s2f.model.speech2face import Speech2Face
    from s2f.serve import FaceService, Gallery, Limits
    from s2f.serve.app import build_app, upload_folder

    uploads = upload_folder()  # before Gradio is imported: it reads GRADIO_TEMP_DIR once
    # A plain `kill` ends the server through the `finally` below too, so its upload folder goes with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        model = Speech2Face.from_pretrained(model_dir, device=options.device)
        teacher = model.teacher.get("name")
        gallery = None
        if gallery_root is not None:
            gallery = Gallery.from_shards(gallery_root, split=options.gallery_split, teacher=teacher)
        limits = Limits(max_upload_mb=options.max_upload_mb, max_seconds=options.max_seconds)
        settings = inference_settings(inference, options)
        service = FaceService(model, gallery, limits, top_k=options.top_k, inference=settings)
        app = build_app(service, _card(model_dir, model), uploads)
        where = "this machine only" if options.host in ("127.0.0.1", "localhost", "::1") else "reachable from others"
        print(f"s2f serve: {model_dir} with " + (f"{len(gallery)} gallery faces from {gallery.source}" if gallery
                                                 else "no gallery (give --gallery SHARDS)"))  # fmt: skip
        app.launch(
            server_name=options.host,
            server_port=options.port,
            max_file_size=f"{options.max_upload_mb:g}mb",
            quiet=True,
            ssr_mode=False,
            show_error=False,
            run_history=False,
            prevent_thread_lock=True,  # returns once the port accepts connections, so the line below is true
        )
        print(f"s2f serve: listening on http://{options.host}:{options.port} ({where}); Ctrl-C stops it", flush=True)
        app.block_thread()
    finally:
        shutil.rmtree(uploads, ignore_errors=True)
    return 0


def _model_and_gallery(model: str | None, gallery: str | None) -> tuple[str, str | None]:
    """The model folder to serve and its gallery: given ones, else what ``s2f demo`` left (see the module)."""
    if model is None:
        if not (DEMO_MODEL / "config.json").is_file():
            raise ConfigError(
                f"no --model given and no demo model in {DEMO_MODEL}: make one with `s2f demo` (a few minutes on a "
                "CPU, needs s2f[demo]) or give --model DIR [--gallery SHARDS]"
            )
        model = str(DEMO_MODEL)
    folder = Path(model)
    if not (folder / "config.json").is_file() and (folder / "model" / "config.json").is_file():
        folder = folder / "model"  # a demo's output folder: its model is inside
    if gallery is None:
        gallery = demo_gallery(folder)
    return str(folder), gallery


def demo_gallery(model_dir: Path) -> str | None:
    """The shards ``s2f demo`` prepared beside the model it saved (``OUT/model``, ``OUT/shards``), if any.

    Example:
        >>> demo_gallery(Path("no/such/demo/model")) is None
        True
    """
    shards = model_dir.parent / "shards"
    return str(shards) if (shards / "s2f_shards.json").is_file() else None


def _card(model_dir: str, model: object) -> str:
    """The folder's own model card, or one written now for a folder saved before cards existed."""
    card = Path(model_dir) / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
    else:
        from s2f.model.card import model_card

        text = model_card(model)  # type: ignore[arg-type]
    return re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)  # the hub's metadata header is not for reading
