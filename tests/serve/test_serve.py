"""``s2f serve``: the page in a real browser, every bad input answered with one line, and nothing left on disk."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("gradio", reason="s2f serve needs the serve extra")

from s2f import ENCODERS, TEACHERS, Speech2Face
from s2f.shards import ClipRecord

GALLERY_SPEAKERS, TOP_K = 6, 3
VOICE_SECONDS = 2.0


def _gallery_shards(folder: Path) -> Path:
    """Distinct faces (morphs of two real portraits) with their tiny-teacher embeddings: 4 train, 6 test speakers."""
    from helpers.faces import make_faces
    from helpers.shards import write_shards

    teacher = TEACHERS.create("vggface_tiny")
    faces, shapes = make_faces(4 + GALLERY_SPEAKERS, 3)
    embeddings = teacher.embed_images(torch.from_numpy(faces).permute(0, 3, 1, 2)).numpy()
    rng = np.random.default_rng(0)
    records = (
        ClipRecord(f"s{i:02d}c0", f"s{i:02d}", (rng.standard_normal(16_000) * 3000).astype(np.int16), faces[i],
                   embeddings[i], shapes[i], split="train" if i < 4 else "test")
        for i in range(len(faces))
    )  # fmt: skip
    return write_shards(folder / "shards", records, teacher=teacher.name, embed_dim=teacher.embed_dim)


@pytest.fixture(scope="module")
def gallery(shard_factory) -> Path:
    return shard_factory.build("serve-gallery", _gallery_shards)


@pytest.fixture(scope="module")
def model_dir(gallery: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny paper CNN, seeded, with its batch-norm statistics measured on a few voices, and a linear face decoder
    fitted in closed form on the gallery's train faces.

    The page is under test, not what the model learned: measured statistics are what make an untrained encoder
    hear its input (with the initial ones every voice gives nearly the same embedding), in a second rather than
    the minute that training would take.
    """
    from s2f.train import FaceDecoderSystem

    torch.manual_seed(0)
    faces = FaceDecoderSystem("linear_face_decoder_tiny", mean_face_clips=16)
    faces.fit_mean_face(str(gallery))
    teacher = {"name": "vggface_tiny", "embed_dim": 64}
    model = Speech2Face(ENCODERS.create("s2f_cnn_tiny"), faces.decoder, clip_seconds=VOICE_SECONDS, teacher=teacher)
    for layer in model.encoder.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = None  # a plain average over what it sees: one batch sets the statistics
            layer.reset_running_stats()
    voices = [_voice(Path(str(tmp_path_factory.mktemp("voices")) + f"/{p}.wav"), p) for p in (90, 140, 200, 260, 320)]
    model.train()
    with torch.no_grad():
        model(torch.stack([torch.from_numpy(sf.read(v, dtype="float32")[0]) for v in voices]))
    return model.eval().save_pretrained(tmp_path_factory.mktemp("serve-model") / "model")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_dir: Path, gallery: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``s2f serve`` on a free loopback port: its URL and its own temporary folder (TMPDIR)."""
    port, tmp = _free_port(), tmp_path_factory.mktemp("serve-tmp")
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "s2f", "serve", "--model", str(model_dir), "--gallery", str(gallery),
               "--port", str(port), "--top-k", str(TOP_K)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 180
    try:
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "listening on" in line or process.poll() is not None:
                break
        assert f"listening on {url[:-1]} (this machine only)" in "".join(lines), "".join(lines)
        yield url, tmp
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not list(tmp.glob("s2f-serve-*")), "the server's upload folder outlived it"


def _voice(path: Path, pitch: float, seconds: float = VOICE_SECONDS) -> Path:
    """A vowel-like buzz: harmonics of ``pitch`` under a slow loudness contour."""
    t = np.arange(round(seconds * 16_000)) / 16_000
    wave = sum(np.sin(2 * np.pi * pitch * h * t) / h for h in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, (0.2 * wave).astype(np.float32), 16_000)
    return path


def _decode(data_uri: str) -> np.ndarray:
    from PIL import Image

    header, payload = data_uri.split(",", 1)
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))


@pytest.mark.slow
def test_the_page_shows_the_face_cartoon_and_nearest_faces_of_each_voice(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium (.ci/run installs it: apt-get install chromium)")
    url, uploads = server
    faces = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for pitch in (110.0, 290.0):
            page.goto(url)
            page.locator("#s2f-audio input[type=file]").set_input_files(str(_voice(tmp_path / f"{pitch}.wav", pitch)))
            page.wait_for_selector("#s2f-audio audio", state="attached", timeout=30_000)
            page.click("#s2f-run")
            page.wait_for_selector("#s2f-face", timeout=60_000)
            faces.append(_decode(page.get_attribute("#s2f-face", "src")))
            assert page.locator("#s2f-cartoon svg #skin").count() == 1
            assert page.locator("#s2f-nearest img.s2f-neighbour").count() == TOP_K
            assert f"nearest of {GALLERY_SPEAKERS} gallery faces" in page.inner_text("#s2f-result")
            assert page.locator("#s2f-error").count() == 0
        page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
        browser.close()
    assert faces[0].shape == faces[1].shape == (64, 64, 3) and faces[0].std() > 5
    assert np.abs(faces[0].astype(int) - faces[1].astype(int)).mean() > 1  # two voices, two faces
    assert (tmp_path / "serve.png").stat().st_size > 10_000
    assert not [p for p in uploads.rglob("*") if p.is_file()], "an upload was kept after its answer"


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input and the words its one-line answer must hold."""
    rate = 16_000
    (folder / "text.wav").write_text("not audio at all\n" * 200)
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "silent.wav", np.zeros(2 * rate, np.float32), rate)
    _voice(folder / "short.wav", 200.0, seconds=0.2)
    # An hour of 8-bit 8 kHz audio: 29 MB, under the size limit, so the length limit has to catch it.
    sf.write(folder / "hour.wav", np.full(8000 * 3600, 1, np.int16), 8000, subtype="PCM_U8")
    nan = _voice(folder / "nan_source.wav", 200.0)
    samples, _ = sf.read(nan, dtype="float32")
    samples[1000] = np.nan
    sf.write(folder / "nan.wav", samples, rate, subtype="FLOAT")
    return {
        "text": (folder / "text.wav", "not an audio file"),
        "empty": (folder / "empty.wav", "the file is empty"),
        "silent": (folder / "silent.wav", "silent"),
        "short": (folder / "short.wav", "the clip is 0.2 s long; speak for at least 1 s"),
        "hour": (folder / "hour.wav", "the clip is 60 min long; the limit is 10 min"),
        "nan": (folder / "nan.wav", "NaN"),
    }


@pytest.mark.slow
def test_every_bad_input_gets_one_line_and_the_next_voice_still_works(server: tuple[str, Path], tmp_path: Path) -> None:
    import httpx
    from gradio_client import Client, handle_file

    url, uploads = server
    client = Client(url, verbose=False)
    for name, (path, words) in _bad_inputs(tmp_path).items():
        answer = client.predict(handle_file(str(path)), api_name="/predict")
        assert answer.startswith('<p id="s2f-error"') and "\n" not in answer, name
        assert words in answer, (name, answer)
    # 200 MB is refused by the web server before it reaches the model (the limit: 50 MB).
    big = tmp_path / "big.wav"
    with big.open("wb") as file:
        file.truncate(200 * 2**20)
    with big.open("rb") as file:
        refused = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.wav", file, "audio/wav")}, timeout=120)
    assert refused.status_code == 413 and "maximum allowed size of 52428800 bytes" in refused.text
    # Only what the app serves can be read: not the model's folder, not the system's files.
    for outside in ("/etc/passwd", str(Path(__file__))):
        assert httpx.get(f"{url}gradio_api/file={outside}").status_code in (403, 404)

    answer = client.predict(handle_file(str(_voice(tmp_path / "good.wav", 180.0))), api_name="/predict")
    assert 'id="s2f-face"' in answer and 'id="s2f-error"' not in answer
    assert not [p for p in uploads.rglob("*") if p.is_file()], "an upload was kept after its answer"

    # The same recording sent four times at once: Gradio stores it once, and every request gets its face.
    same = handle_file(str(_voice(tmp_path / "same.wav", 220.0)))
    answers = [job.result(timeout=300) for job in [client.submit(same, api_name="/predict") for _ in range(4)]]
    assert all('id="s2f-face"' in a and 'id="s2f-error"' not in a for a in answers), answers
    assert len(set(answers)) == 1
    assert not [p for p in uploads.rglob("*") if p.is_file()], "an upload was kept after its answer"


def test_without_a_model_it_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from s2f.cli import main

    monkeypatch.chdir(tmp_path)  # no runs/demo here
    assert main(["serve"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no demo model in runs/demo/model: make one with `s2f demo`" in error
