"""The demo's plans: how big a run is (the world, the clip lengths, the training budgets), by name.

``s2f demo --plan NAME`` and :func:`s2f.demo.run_demo` read :data:`DEMO_PLANS`; a custom
:class:`DemoPlan` runs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEMO_PLANS", "EMBED_DIM", "TEACHER", "DemoPlan"]

TEACHER = "dlib_resnet"
EMBED_DIM = 128


@dataclass(frozen=True)
class DemoPlan:
    """How big a demo run is: the world, the clip lengths and the training budgets.

    Attributes:
        identities: People in the synthetic world (a fifth of them are held out for testing).
        clips_per_identity: Clips (videos) per person.
        seconds: Speech per clip, as written and as stored in the shards.
        train_seconds: Clip length the encoder trains on: a window at a random start of each clip,
            new every epoch.
        encoder_epochs: Passes over the training clips for the voice encoder.
        decoder_epochs: Passes over the training faces for the face decoder.
        batch_size: Clips per training step.
        lr: The encoder's Adam learning rate at the start. The paper CNN's FC head takes the whole
            spectrum (2,080 inputs per unit in the tiny CNN), and Adam moves every input's weight by
            about the learning rate per step, so at 1e-3 its ReLU units are pushed below zero for
            every clip within two epochs and the encoder outputs a constant (measured: 97 % of the
            hidden units dead after one epoch, 100 % after two; at 3e-4 with 256 of them, half stay
            alive and it learns).
        lr_decay_per_epoch: The encoder's learning rate is multiplied by this after every epoch (the
            paper's 0.95 per 10k steps is for runs a thousand times longer).
        lambda_l1: Weight of the L1 term through the decoder's first layer (the paper: 1). Off here:
            through a tiny decoder's first layer on dlib's 128-D space it outweighs the other term
            fifty-fold and pulls every prediction to the average face (measured at the default
            size: held-out R@10 22 % with it, 36 % without, chance 17 %).
        lambda_l2: Weight of the normalised L2 term (paper plus centered, see
            :class:`~s2f.train.Speech2FaceSystem`'s ``center_embeddings``). The paper's 0.025 balances
            it against a distillation term 8,000 times heavier; dlib's teacher has no classifier, so
            here it is the whole loss, and at 0.025 the gradients of over half of the encoder's
            parameters fall under Adam's epsilon of 1e-4 (measured at the start of training: 54 %; 10 %
            at weight 1), so Adam's steps shrink in proportion.
        precision: Lightning's precision for the encoder's training (``bf16-mixed`` uses the CPU's
            bf16 matrix units where it has them).
        channels_last: Train the encoder in channels-last memory format (faster bf16 convolutions).
        adam_eps: Adam's epsilon (the paper: 1e-4; PyTorch's default 1e-8 here, for the same reason).
        eval_seconds: Input lengths evaluated (the paper: 3 s and 6 s).
        encoder: Registered voice encoder (its embedding is set to the teacher's 128-D).
        encoder_options: Arguments for the encoder beyond its registered configuration. The demo's
            conformer keeps twice the frequency resolution of the registered one
            (``frequency_subsampling=2``): at 4x, 125 Hz bins blur the harmonics that carry pitch
            (measured: held-out R@10 35 % at 4x, 44-49 % at 2x, 37 % at 1x; chance 17 %).
        decoder: Registered face decoder. The linear face model fits in closed form on the training
            faces; Cole et al.'s CNN (``warp_decoder_tiny``) renders the average face for every
            embedding within this budget (see ``docs/synth.md``).
        decoder_image_size: Side of the decoder's output face, pixels.
        decoder_options: Arguments for the decoder beyond its registered configuration.
        decoder_lr: The decoder's Adam learning rate for ``decoder_epochs`` of gradient training
            after its closed-form fit (a CNN decoder learns by gradient alone).
        carrier: What the world's voices are made of (:data:`s2f.synth.world.CARRIERS`): ``speech`` (eSpeak NG
            sentences through rooms and microphones) or ``source-filter`` (wordless syllables).
    """

    identities: int
    clips_per_identity: int
    seconds: float
    train_seconds: float
    encoder_epochs: int
    decoder_epochs: int
    batch_size: int = 16
    lr: float = 1e-3
    lr_decay_per_epoch: float = 0.9
    lambda_l1: float = 0.0
    lambda_l2: float = 1.0
    adam_eps: float = 1e-8
    precision: str = "32-true"
    channels_last: bool = False
    eval_seconds: tuple[float, ...] = (3.0, 6.0)
    encoder: str = "s2f_conformer_tiny"
    encoder_options: tuple[tuple[str, Any], ...] = (("frequency_subsampling", 2),)
    decoder: str = "linear_face_decoder"
    decoder_image_size: int = 128
    decoder_options: tuple[tuple[str, Any], ...] = (("components", 64), ("flow_size", 64))
    decoder_lr: float = 1e-3
    carrier: str = "source-filter"


DEMO_PLANS = {
    "default": DemoPlan(identities=300, clips_per_identity=3, seconds=6.0, train_seconds=3.0, encoder_epochs=45,
                        decoder_epochs=0, lr_decay_per_epoch=0.95),
    "quick": DemoPlan(identities=120, clips_per_identity=2, seconds=3.0, train_seconds=3.0, encoder_epochs=30,
                      decoder_epochs=0, eval_seconds=(3.0,)),
    # The paper's CNN (tiny widths, a 256-wide hidden layer: its registered 64 is narrower than dlib's
    # 128-D output) on the default world: bf16 and channels-last, as the GPU recipe; lr: see DemoPlan.lr.
    "paper-cnn": DemoPlan(identities=300, clips_per_identity=3, seconds=6.0, train_seconds=3.0, encoder_epochs=12,
                          decoder_epochs=0, encoder="s2f_cnn_tiny", encoder_options=(("hidden_dim", 256),),
                          lr=3e-4, precision="bf16-mixed", channels_last=True),
}  # fmt: skip
