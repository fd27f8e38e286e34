"""A pretrained speaker encoder as the voice front end: GE2E's d-vector, then a trainable head.

The field's newer work maps a speaker embedding trained on real speech into the face space instead
of learning the voice from the face data alone. This family does that with the GE2E speaker encoder
(Wan et al., ICASSP 2018) whose weights ship inside the PyPI wheel of ``resemblyzer`` (trained on
LibriSpeech, VoxCeleb 1 and 2): three LSTM layers of 256 over 40-channel mel frames, a linear layer
and a ReLU give a 256-D d-vector per 1.6 s partial utterance; the clip's d-vector is the L2-normed
mean of its partials'. A head (batch norm, FC, ReLU, FC) maps the d-vector to the teacher's space.
The front end is frozen by default (``freeze_frontend=False`` fine-tunes it with the head).

**Its input.** Every s2f encoder reads the complex STFT that the system's front end computes from
the waveform, with the settings the encoder declares (:meth:`VoiceEncoder.frontend_config`). This
encoder declares the STFT GE2E was trained on, at 16 kHz: 25 ms Hann windows (400 samples) every
10 ms, a 400-point FFT (201 bins) and no power-law compression (``power=1``), so the real and
imaginary parts arrive as they are and ``re² + im²`` is librosa's power spectrum exactly. The mel
filterbank (librosa's Slaney filters) then gives resemblyzer's features without a second pass over
the waveform, in the training step, on the training device, with nothing stored. The system,
``Speech2Face`` and its saved folders already build their front end from these settings, so the
rest of s2f needs no change. Two differences from resemblyzer's own pipeline remain, both small:
s2f's frames are not centred (each starts where librosa's would be centred, 12.5 ms later), and
the last partial is padded with silent frames rather than computed over zero-padded audio;
``tests/encoders/test_speaker_frontend.py`` measures the result against resemblyzer's ``embed_utterance``.
resemblyzer normalises the loudness of every utterance up to -30 dBFS before the mel transform
(never down); the same gain is applied here to the mel power, from the clip's RMS as the STFT gives
it (Parseval's theorem over the windowed frames). Its voice-activity trimming is left out: s2f
clips are cut or loop-repeated to one length, and the partials' mean already smooths pauses.

**The weights** are read from ``pretrained.pt`` inside the installed ``resemblyzer`` package, which
is found without being imported (importing it would load webrtcvad and librosa, which this module
never needs), with ``torch.load(weights_only=True)``: tensors only, nothing unpickled that could run
code. They are copied into the plain PyTorch layers below, which have resemblyzer's names and
shapes. A saved model carries them in its own ``model.safetensors``, so loading it needs neither
resemblyzer nor the file; the constructor argument that reads them is recorded as done.

Example:
    >>> import torch
    >>> encoder = SpeakerFrontendEncoder(hidden_size=16, num_layers=1, dvector_dim=16, load_pretrained=False,
    ...                                  hidden_dim=None, embed_dim=8)
    >>> encoder.frontend_config()["n_fft"], encoder.num_bins
    (400, 201)
    >>> encoder(torch.randn(2, 2, 298, 201)).shape
    torch.Size([2, 8])
    >>> partial_starts(598)  # a 6 s clip: seven 1.6 s partials, half overlapping
    [0, 77, 154, 231, 308, 385, 462]
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchaudio.functional as AF

from ..config.components import INIT_ARGS
from ..config.weights import load_into
from ..errors import MissingExtraError, WeightsError
from .voice_encoder import ENCODERS, VoiceEncoder

__all__ = [
    "GE2ESpeakerEncoder",
    "MelFeatures",
    "SpeakerFrontendEncoder",
    "ge2e_weights_path",
    "partial_starts",
    "s2f_ge2e",
    "s2f_ge2e_tiny",
]

# resemblyzer's hyper-parameters (resemblyzer/hparams.py), which its weights were trained with.
MEL_CHANNELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_STEP = 77  # round(16000 / 1.3 / 160): resemblyzer's default of 1.3 partials per second
MIN_COVERAGE = 0.75  # a last partial is kept when at least this much of it is speech
TARGET_DBFS = -30.0
GE2E_SIZES = {"hidden_size": 256, "num_layers": 3, "dvector_dim": 256}
WEIGHTS_PACKAGE, WEIGHTS_FILE = "resemblyzer", "pretrained.pt"
_INSTALL = "pip install 's2f[train]' (or pip install resemblyzer)"
_WINDOW, _FFT, _HOP = 400, 400, 160


def ge2e_weights_path() -> Path:
    """The GE2E weights file inside the installed ``resemblyzer`` package (found without importing it).

    Raises:
        MissingExtraError: resemblyzer is not installed, or its wheel holds no weights file.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    where = f" (no {WEIGHTS_FILE} in {', '.join(folders)})" if folders else ""
    raise MissingExtraError(f"the GE2E speaker front end needs resemblyzer's weights{where}: {_INSTALL}")


def partial_starts(frames: int) -> list[int]:
    """First frames of the 1.6 s partial utterances that cover ``frames`` frames, as resemblyzer cuts them.

    Partials start every 0.77 s; the last one is kept if at least 75 % of it lies inside the clip
    (the rest is padded), and a clip shorter than one partial gives one padded partial.
    """
    starts = list(range(0, max(1, frames - PARTIAL_FRAMES + PARTIAL_STEP + 1), PARTIAL_STEP))
    if len(starts) > 1 and (frames - starts[-1]) / PARTIAL_FRAMES < MIN_COVERAGE:
        starts.pop()
    return starts


class MelFeatures(nn.Module):
    """Complex STFT [B, 2, T, 201] -> resemblyzer's mel power [B, T, 40], loudness raised to -30 dBFS.

    Not a log-mel: GE2E was trained on the mel power itself, as librosa's ``melspectrogram`` gives it.
    """

    def __init__(self) -> None:
        super().__init__()
        # Constants, made on the CPU even inside a meta-device context (a skeleton built to check a file).
        with torch.device("cpu"):
            filters = AF.melscale_fbanks(_FFT // 2 + 1, 0.0, 8000.0, MEL_CHANNELS, 16_000, "slaney", "slaney")
            # Parseval over one windowed frame: sum(x_n^2 w_n^2) = (|X_0|^2 + 2 sum|X_k|^2 + |X_N/2|^2) / N.
            weights = torch.full((_FFT // 2 + 1,), 2.0 / _FFT)
            weights[0] = weights[-1] = 1.0 / _FFT
            self.window_energy = float(torch.hann_window(_WINDOW, periodic=True).square().sum())
        self.filters: torch.Tensor
        self.bin_weights: torch.Tensor
        self.register_buffer("filters", filters, persistent=False)
        self.register_buffer("bin_weights", weights, persistent=False)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        # In fp32 as the front end, also in a model copied to bf16 for inference (its buffers are then bf16).
        with torch.autocast(device_type=spec.device.type, enabled=False):
            power = spec.float().square().sum(dim=1)  # [B, T, F]
            mean_square = (power @ self.bin_weights.float()).mean(dim=1) / self.window_energy  # [B]
            target = 10.0 ** (TARGET_DBFS / 10.0)  # the mean square of a -30 dBFS clip
            gain = (target / mean_square.clamp_min(1e-20)).clamp_min(1.0)  # raise quiet clips, never lower
            return (power @ self.filters.float()) * gain[:, None, None]


class GE2ESpeakerEncoder(nn.Module):
    """resemblyzer's network: LSTM over mel frames, linear, ReLU, L2 norm -> a d-vector per partial.

    Args:
        hidden_size: Width of the LSTM layers (GE2E: 256).
        num_layers: LSTM layers (GE2E: 3).
        dvector_dim: Size of the d-vector (GE2E: 256).
    """

    def __init__(self, hidden_size: int = 256, num_layers: int = 3, dvector_dim: int = 256) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_CHANNELS, hidden_size, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, dvector_dim)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Mel partials [N, frames, 40] -> unit-length d-vectors [N, dvector_dim]."""
        _, (hidden, _) = self.lstm(mels)
        return F.normalize(F.relu(self.linear(hidden[-1])), dim=1)

    def embed_clips(self, mels: torch.Tensor) -> torch.Tensor:
        """Mel frames [B, T, 40] of whole clips -> the clips' d-vectors [B, dvector_dim]: the L2-normed
        mean over the clip's partials, as resemblyzer's ``embed_utterance``."""
        starts = partial_starts(mels.shape[1])
        padding = starts[-1] + PARTIAL_FRAMES - mels.shape[1]
        if padding > 0:
            mels = F.pad(mels, (0, 0, 0, padding))
        partials = mels.unfold(1, PARTIAL_FRAMES, PARTIAL_STEP)[:, : len(starts)]  # [B, P, 40, frames]
        batch, count = partials.shape[:2]
        dvectors = self(partials.permute(0, 1, 3, 2).reshape(batch * count, PARTIAL_FRAMES, MEL_CHANNELS))
        return F.normalize(dvectors.view(batch, count, -1).mean(dim=1), dim=1)

    def load_ge2e(self, path: str | Path | None = None) -> None:
        """Copies resemblyzer's pretrained weights (``model_state`` of its ``pretrained.pt``) into this network."""
        path = Path(path) if path is not None else ge2e_weights_path()
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unreadable, truncated, or holding pickled code: one line either way
            raise WeightsError(f"{path}: not readable as GE2E weights ({type(exc).__name__}); {_INSTALL}") from None
        state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise WeightsError(f"{path}: holds no 'model_state' of GE2E weights; reinstall resemblyzer")
        # similarity_weight/bias belong to the GE2E training loss, not to the network.
        state = {key: value for key, value in state.items() if not key.startswith("similarity_")}
        load_into(self, state, path, "GE2E speaker encoder")


class SpeakerFrontendEncoder(VoiceEncoder):
    """GE2E's d-vector of the clip (frozen or fine-tuned), then a head into the teacher's embedding space.

    Args:
        hidden_size: Width of the front end's LSTM layers (256 for the pretrained weights).
        num_layers: LSTM layers (3 for the pretrained weights).
        dvector_dim: Size of the front end's d-vector (256 for the pretrained weights).
        load_pretrained: Read resemblyzer's GE2E weights into the front end when it is built. Once
            read they are part of the encoder's state, so the encoder records ``False`` and a saved
            model rebuilds without resemblyzer; ``False`` leaves the front end randomly initialised.
        freeze_frontend: Keep the front end fixed (no gradients, eval mode) and train the head only.
        hidden_dim: Width of a ReLU hidden layer in the head; ``None`` maps the d-vector linearly.
        embed_dim: Size of the output embedding; must match the teacher's.
        dropout: Dropout on the head's hidden layer.
    """

    n_fft = _FFT
    win_length = _WINDOW
    hop_length = _HOP
    power = 1.0
    num_bins = _FFT // 2 + 1

    def __init__(
        self,
        hidden_size: int = 256,
        num_layers: int = 3,
        dvector_dim: int = 256,
        load_pretrained: bool = True,
        freeze_frontend: bool = True,
        hidden_dim: int | None = 512,
        embed_dim: int = 4096,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        sizes = {"hidden_size": hidden_size, "num_layers": num_layers, "dvector_dim": dvector_dim}
        if load_pretrained and sizes != GE2E_SIZES:
            raise ValueError(f"the pretrained GE2E weights need {GE2E_SIZES}, got {sizes}")
        self.embed_dim = embed_dim
        self.freeze_frontend = freeze_frontend
        self.mel = MelFeatures()
        self.frontend = GE2ESpeakerEncoder(hidden_size, num_layers, dvector_dim)
        if load_pretrained and not self.frontend.linear.weight.is_meta:  # a meta skeleton has nothing to fill
            self.frontend.load_ge2e()
        # The weights now travel in the state dict: a saved model must not go looking for resemblyzer.
        self.__dict__[INIT_ARGS]["load_pretrained"] = False
        if freeze_frontend:
            self.frontend.requires_grad_(False)
        head: list[nn.Module] = [nn.BatchNorm1d(dvector_dim)]
        head += (
            [nn.Linear(dvector_dim, embed_dim)]
            if hidden_dim is None
            else [nn.Linear(dvector_dim, hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
                  nn.Linear(hidden_dim, embed_dim)]
        )  # fmt: skip
        self.head = nn.Sequential(*head)

    def train(self, mode: bool = True) -> SpeakerFrontendEncoder:
        super().train(mode)
        if self.freeze_frontend:
            self.frontend.eval()
        return self

    def dvector(self, spec: torch.Tensor) -> torch.Tensor:
        """The clip's GE2E d-vector [B, dvector_dim] from its spectrogram [B, 2, T, 201]."""
        self.check_spectrogram(spec)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_frontend):
            return self.frontend.embed_clips(self.mel(spec))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.head(self.dvector(spec))


# -- registered variants -----------------------------------------------------------------------


@ENCODERS.register("s2f_ge2e")
def s2f_ge2e(**overrides: object) -> SpeakerFrontendEncoder:
    """resemblyzer's pretrained GE2E speaker encoder, frozen, into an FC 512 -> 4096 head (1.4 M frozen)."""
    return SpeakerFrontendEncoder(**overrides)  # type: ignore[arg-type]


@ENCODERS.register("s2f_ge2e_tiny")
def s2f_ge2e_tiny(**overrides: object) -> SpeakerFrontendEncoder:
    """A randomly initialised one-layer LSTM of width 32 and a 64-D embedding, for tests and CPU demos."""
    config: dict[str, object] = {
        "hidden_size": 32,
        "num_layers": 1,
        "dvector_dim": 32,
        "load_pretrained": False,
        "hidden_dim": 64,
        "embed_dim": 64,
    }
    return SpeakerFrontendEncoder(**{**config, **overrides})  # type: ignore[arg-type]
