"""``Speech2FaceSystem``: trains a voice encoder to hit a frozen teacher's face embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.nn.parallel import DistributedDataParallel

from .._noise import drop_frozen_module_warning
from ..audio import SpectrogramFrontend
from ..config.components import component_spec
from ..decoders.face_decoder import DECODERS, FaceDecoder
from ..encoders.voice_encoder import ENCODERS, VoiceEncoder
from ..errors import ConfigError
from ..model.angles import angles_deg
from ..model.speech2face import Speech2Face
from ..teachers.by_name import build_teacher
from ..teachers.face_teacher import FaceTeacher
from ._logging import log_terms
from .augment import RoomAndMicrophone
from .losses import Speech2FaceLoss
from .nonfinite import skip_nonfinite_step

__all__ = ["Speech2FaceSystem"]

drop_frozen_module_warning()  # the frozen teacher (and decoder) stay in eval mode on purpose

_FROZEN_PREFIXES = ("teacher.", "decoder.")


def _frozen_decoder(decoder: FaceDecoder | str | None, teacher: str) -> FaceDecoder | None:
    """The decoder given, built from its registered name, or loaded from a trained one's folder or ``.ckpt``."""
    if not isinstance(decoder, str):
        return decoder
    if decoder in DECODERS or not Path(decoder).expanduser().exists():
        return DECODERS.create(decoder)  # an unknown name fails there, listing the known ones
    from ..model.decoder_folder import load_decoder

    # Building the decoder draws its random initial weights, which the saved ones then replace. Drawn from
    # a forked generator, they leave the global one where it was: a run given a decoder's folder trains
    # exactly as one given that decoder itself (the same dropout masks and random crops afterwards).
    with torch.random.fork_rng(devices=[]):
        return load_decoder(decoder, teacher=teacher)


def _fastest_adam(params: list[torch.nn.Parameter]) -> dict[str, bool]:
    """``fused=True`` where every parameter sits on a CPU or CUDA device, else torch's default.

    The fused Adam updates each parameter in one pass instead of about ten elementwise ones: on
    the paper's CNN (163 M parameters) its step measured 4.6x faster on the CPU than the default
    per-tensor loop (which is what the CPU gets by default; CUDA's default is ``foreach``).
    Lightning calls ``configure_optimizers`` after moving the model, so the devices are final here.
    """
    devices = {p.device.type for p in params}
    floating = all(p.is_floating_point() for p in params)
    return {"fused": True} if params and floating and devices <= {"cpu", "cuda"} else {}


class Speech2FaceSystem(L.LightningModule):
    """The paper's training system: spectrogram on the device, encoder, loss against the teacher.

    Models can be given as instances (``class_path`` / ``init_args`` in a recipe) or as
    registered names. The teacher and the decoder are frozen: eval mode throughout, no
    gradients, and never written into checkpoints (they are rebuilt from their configuration).

    Batches carry raw waveforms [B, N]; the STFT and its power-law compression run here, in
    :attr:`frontend`, on whatever device the batch was moved to (the GPU under a GPU recipe).

    Under DDP only the encoder is synchronised: the frozen parts' parameters and buffers are
    listed in ``_ddp_params_and_buffers_to_ignore``, so DDP neither broadcasts them at start-up
    nor reduces them, and as they never need gradients ``find_unused_parameters`` stays off
    (see ``docs/scaling.md``).

    Args:
        encoder: The voice encoder, or its registered name.
        teacher: The frozen face teacher whose embeddings the shards hold, or its registered name.
        teacher_weights: Weights file for a teacher given by name (VGG-Face needs one).
        decoder: A frozen face decoder whose first layer serves the L1 term, its registered name, or a trained
            one's folder or ``.ckpt`` (:func:`s2f.model.decoder_folder.load_decoder`); optional.
        lambda_l2: Weight of the normalised L2 term (the paper: 0.025).
        lambda_distill: Weight of the distillation term through the teacher's classifier (200).
        temperature: Distillation temperature (2).
        lambda_l1: Weight of the L1 term through the decoder's first layer (1).
        lr: Adam learning rate (1e-3).
        betas: Adam betas (the paper: beta1 = 0.5).
        eps: Adam epsilon (1e-4).
        lr_decay: Factor the learning rate is multiplied by every ``lr_decay_steps`` steps (0.95).
        lr_decay_steps: Optimizer steps between decays (10,000).
        channels_last: Run the encoder in channels-last memory format (faster convolutions in bf16).
        compile: Run the encoder under ``torch.compile`` (inductor) in every step of the system:
            it fuses the ReLU, BatchNorm and pooling around each convolution, forward and backward.
            Only the encoder is compiled; the STFT front end and the frozen teacher and decoder stay
            eager, so they add no graphs or recompiles. The first step pays the compilation (minutes
            for the paper's CNN on a few CPU cores; a new batch size or eval mode compiles again).
            Checkpoints and :meth:`export` are the same as without it (the exported model runs eager).
            Meant for GPUs: on the CPU it measured 1.7x faster for ``s2f_cnn_tiny`` but 0.6x for the
            paper's CNN (oneDNN's convolution backward is slower on inductor's layouts), so the CPU
            recipes leave it off (``benchmarks/train_step.py --train-compile`` measures it). In a
            clean environment, torch 2.14.1's inductor also failed to compile the tiny system's
            bf16 backward on the CPU (``Cannot convert expression to float``).
        center_embeddings: Measure the mean teacher embedding of (up to ``center_clips``) training
            clips before the first step, start the encoder's output bias there, and add to the
            normalised L2 term the same distance measured *from that mean* (logged as ``l2_centered``).
            Off in the paper. Teachers whose embeddings fill a narrow cone (dlib's: about 20 degrees
            around the mean) otherwise give an encoder little reason to move off the average face
            (measured in ``s2f demo``: held-out R@10 at chance without it). The mean is stored in
            checkpoints, and the encoder still predicts ordinary teacher embeddings.
        center_clips: How many training clips (the first ones of the split) the mean is measured on.
        max_nonfinite_steps: Training steps with a NaN or infinite loss that are skipped (no weight
            update, a warning, counted as ``train/skipped_steps``) before the run stops with one line;
            ``0`` stops at the first.
        lr_decay_epochs: Decay every this many epochs instead of every ``lr_decay_steps`` steps (the demo's
            recipes: 1, as a run of a few dozen passes over a small world needs).
        channel_augmentation: Share of each training batch's clips that first pass through a random
            room, microphone band, tilt and noise (:class:`~s2f.train.augment.RoomAndMicrophone`, on the
            batch's device). Off in the paper, whose voices were already recorded; for dry synthetic
            voices, so the encoder does not read a recording's channel as part of the voice.

    Example:
        >>> import torch
        >>> system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
        >>> system(torch.randn(2, 16_000)).shape
        torch.Size([2, 64])
    """

    embedding_center: torch.Tensor

    def __init__(
        self,
        encoder: VoiceEncoder | str = "s2f_cnn",
        teacher: FaceTeacher | str = "vggface",
        teacher_weights: str | None = None,
        decoder: FaceDecoder | str | None = None,
        lambda_l2: float = 0.025,
        lambda_distill: float = 200.0,
        temperature: float = 2.0,
        lambda_l1: float = 1.0,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.999),
        eps: float = 1e-4,
        lr_decay: float = 0.95,
        lr_decay_steps: int = 10_000,
        channels_last: bool = False,
        compile: bool = False,
        center_embeddings: bool = False,
        center_clips: int = 10_000,
        max_nonfinite_steps: int = 10,
        lr_decay_epochs: int | None = None,
        channel_augmentation: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "teacher", "decoder"])
        self.encoder: VoiceEncoder = ENCODERS.create(encoder) if isinstance(encoder, str) else encoder
        teacher = build_teacher(teacher, teacher_weights)
        self.teacher: FaceTeacher = teacher.freeze()
        self.decoder: FaceDecoder | None = _frozen_decoder(decoder, self.teacher.name)
        if self.decoder is not None:
            self.decoder.requires_grad_(False).eval()
        if self.encoder.embed_dim != self.teacher.embed_dim:
            raise ConfigError(
                f"the encoder predicts {self.encoder.embed_dim}-D embeddings but the teacher "
                f"{self.teacher.name!r} makes {self.teacher.embed_dim}-D ones; set the encoder's embed_dim"
            )
        self.frontend = SpectrogramFrontend(**self.encoder.frontend_config())  # type: ignore[arg-type]
        # The data decides the clip length; saved models record it (the paper: 6 s).
        self.clip_seconds = 6.0
        self.loss = Speech2FaceLoss(lambda_l2, lambda_distill, temperature, lambda_l1)
        self.channel = RoomAndMicrophone(channel_augmentation, self.frontend.sample_rate)
        # Filled before the first step when center_embeddings is set; saved with the encoder.
        self.register_buffer("embedding_center", torch.zeros(self.teacher.embed_dim))
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
        self._exclude_frozen_parts_from_ddp()

    def _exclude_frozen_parts_from_ddp(self) -> None:
        # Every rank builds the same frozen teacher from its name and weights file, so broadcasting
        # it (hundreds of MB for VGG-Face) at DDP start-up and its buffers before every forward buys
        # nothing. DDP reads this list when it wraps the module.
        frozen = [
            name
            for name, _ in (*self.named_parameters(), *self.named_buffers())
            if name.startswith(_FROZEN_PREFIXES) or name.startswith("frontend.")
        ]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, frozen)

    # -- model ---------------------------------------------------------------------------------

    def configure_model(self) -> None:
        """Shards the encoder with FSDP2 (``fully_shard``) when the strategy gives a device mesh.

        Lightning's ``ModelParallelStrategy`` (``recipes/fsdp.yaml``) sets the mesh and calls this hook
        before it builds the optimizer. Only the trainable encoder is sharded: the frozen teacher, decoder
        and spectrogram front end hold no optimizer state, so every rank keeps its own whole copy (built
        from the same name and weights, as under DDP) and no all-gather is spent on them. The strategy's
        2-D mesh (nodes x processes per node, by default) makes this hybrid sharding: parameters are
        sharded among one node's processes and replicated across nodes.
        """
        from torch.distributed.fsdp import FSDPModule, fully_shard

        mesh = self.device_mesh
        if mesh is None or isinstance(self.encoder, FSDPModule):
            return  # no sharding strategy, or already sharded (Lightning may call this hook more than once)
        fully_shard(self.encoder, mesh=mesh)
        # The strategy loads a checkpoint into the sharded model itself, past load_state_dict below, and
        # strictly would demand the frozen parts that checkpoints leave out; they stay as built instead.
        # Shapes are still checked, and resuming is tested to give an uninterrupted run's weights.
        self.strict_loading = False

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Face embeddings [B, D] of waveforms [B, N]."""
        spec = self.frontend(waves)
        if self.hparams["channels_last"]:
            spec = spec.contiguous(memory_format=torch.channels_last)
        return self._encode(spec)

    def _encode(self, spec: torch.Tensor) -> torch.Tensor:
        if not self.hparams.get("compile"):
            return self.encoder(spec)
        # Compiled on first use and kept out of the module tree (and so out of state_dict, checkpoints,
        # pickles and export()): a plain attribute holding a compiled function, not a submodule.
        compiled = self.__dict__.get("_compiled_encoder")
        if compiled is None:
            compiled = self.__dict__["_compiled_encoder"] = torch.compile(self.encoder)
        return compiled(spec)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_compiled_encoder", None)  # compiled code does not pickle; it is rebuilt on first use
        return state

    def train(self, mode: bool = True) -> Speech2FaceSystem:
        super().train(mode)
        if self.decoder is not None:
            self.decoder.eval()  # frozen like the teacher, which keeps itself in eval mode
        return self

    def _losses(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        predicted = self(batch["audio"])
        target = batch["embedding"].to(predicted.device)
        classifier = self.teacher.classify if self.teacher.has_classifier else None
        first_layer = self.decoder.first_layer if self.decoder is not None else None
        center = self.embedding_center if self.hparams["center_embeddings"] else None
        total, terms = self.loss(predicted, target, classifier, first_layer, center)
        with torch.no_grad():
            terms = {**terms, "angle_deg": angles_deg(predicted, target).mean()}
        return total, terms

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        if self.channel.share:
            batch = {**batch, "audio": self.channel(batch["audio"].to(self.device))}
        total, terms = self._losses(batch)
        if skip_nonfinite_step(self, total, self.hparams["max_nonfinite_steps"]):
            return None  # no weight update from a NaN or infinite loss
        log_terms(self, "train", total, terms, batch["audio"].shape[0])
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        total, terms = self._losses(batch)
        log_terms(self, "val", total, terms, batch["audio"].shape[0])

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        total, terms = self._losses(batch)
        log_terms(self, "test", total, terms, batch["audio"].shape[0])

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"clip_id": batch.get("clip_id"), "embedding": self(batch["audio"]).float()}

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        params = list(self.encoder.parameters())
        optimizer = torch.optim.Adam(
            params, lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"], **_fastest_adam(params)
        )
        every_epochs = hp.get("lr_decay_epochs")  # absent from the hyperparameters of older checkpoints
        interval, size = ("epoch", every_epochs) if every_epochs else ("step", hp["lr_decay_steps"])
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=size, gamma=hp["lr_decay"])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": interval}}

    # -- data consistency ----------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        embed_dim = getattr(datamodule, "embed_dim", None)
        if embed_dim is not None and embed_dim != self.teacher.embed_dim:
            raise ConfigError(
                f"the shards hold {embed_dim}-D embeddings of teacher {getattr(datamodule, 'teacher', '?')!r}, "
                f"but this system's teacher {self.teacher.name!r} is {self.teacher.embed_dim}-D; "
                "train with the teacher the shards were prepared with"
            )
        data_seconds = getattr(datamodule, "clip_seconds", None)
        if isinstance(data_seconds, (int, float)):
            self.clip_seconds = float(data_seconds)
        data_teacher = getattr(datamodule, "teacher", None)
        if isinstance(data_teacher, str) and data_teacher != self.teacher.name:
            raise ConfigError(
                f"the shards were prepared with teacher {data_teacher!r} but this system uses {self.teacher.name!r}"
            )
        if stage == "fit" and self.hparams["center_embeddings"] and not self.embedding_center.any():
            self._measure_center(datamodule)

    def _measure_center(self, datamodule: Any) -> None:
        from ..shards import mean_embedding

        data_dir = getattr(datamodule, "data_dir", None)
        if data_dir is None:
            raise ConfigError("center_embeddings needs an S2FDataModule (it reads the training split's embeddings)")
        options = getattr(datamodule, "storage_options", None)
        center = mean_embedding(
            data_dir,
            "train",
            max_clips=self.hparams["center_clips"],
            **({"storage_options": options} if options else {}),
        )
        self.embedding_center.copy_(center)
        # A checkpoint being resumed overwrites both right after this.
        self.encoder.start_from(center)

    # -- checkpoints: frozen parts stay out, the model's description goes in --------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(_FROZEN_PREFIXES)]:
            del state[key]
        checkpoint["s2f"] = {**self.export().config(), "teacher_spec": component_spec(self.teacher)}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # Checkpoints leave the frozen parts out; keep the ones this system was built with.
        own = super().state_dict()
        merged = dict(state_dict)
        merged.update({k: v for k, v in own.items() if k.startswith(_FROZEN_PREFIXES) and k not in merged})
        if "embedding_centre" in merged:  # checkpoints of s2f 0.1 spelled it so
            merged["embedding_center"] = merged.pop("embedding_centre")
        merged.setdefault("embedding_center", own["embedding_center"])  # checkpoints from before it existed
        return super().load_state_dict(merged, strict=strict, assign=assign)

    def export(self) -> Speech2Face:
        """The trained encoder (with the frozen decoder, if any) as a :class:`~s2f.Speech2Face`."""
        teacher = {"name": self.teacher.name, "embed_dim": self.teacher.embed_dim}
        return Speech2Face(self.encoder, self.decoder, clip_seconds=self.clip_seconds, teacher=teacher)
