"""The demo's plans: how big a run is (the world, the clip lengths evaluated) and which recipes train it, by name.

The training itself is two bundled recipes (``recipes/demo_decoder.yaml`` and ``recipes/demo_*encoder.yaml``,
listed by ``s2f recipes``), which the demo runs through the same LightningCLI as ``s2f fit``, supplying only
what depends on the run: the shard folder, the output folder, the seed, the decoder's folder and whether
to draw progress bars. ``s2f demo --plan NAME`` and :func:`s2f.demo.run_demo` read :data:`DEMO_PLANS`; a
custom :class:`DemoPlan` runs the same way.

Example:
    >>> plan = DEMO_PLANS["quick"].with_overrides(encoder={"model.init_args.lr": 3e-4})
    >>> plan.encoder_setting("model.init_args.lr"), plan.encoder_setting("trainer.max_epochs")
    (0.0003, 30)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["DEMO_PLANS", "EMBED_DIM", "TEACHER", "DemoPlan"]

TEACHER = "dlib_resnet"
EMBED_DIM = 128


@dataclass(frozen=True)
class DemoPlan:
    """How big a demo run is and which recipes train it.

    Attributes:
        identities: People in the synthetic world (a fifth of them are held out for testing).
        clips_per_identity: Clips (videos) per person.
        seconds: Speech per clip, as written and as stored in the shards; the saved model hears whole clips.
        encoder_recipe: The voice encoder's recipe: a bundled recipe's name (``s2f recipes``) or a YAML file.
        decoder_recipe: The face decoder's recipe, the same way.
        eval_seconds: Input lengths evaluated (the paper: 3 s and 6 s).
        carrier: What the world's voices are made of (:data:`s2f.synth.world.CARRIERS`): ``speech`` (eSpeak NG
            sentences through rooms and microphones) or ``source-filter`` (wordless syllables).
        train_speech_share: Share of the training identities' clips that speak instead
            (:class:`s2f.synth.WorldSpec`'s ``train_speech_share``); val and test keep ``carrier``.
        train_speech_clips: Spoken clips each training identity gets on top of its own (``WorldSpec``'s).
        encoder_overrides: Settings that replace the encoder recipe's, keyed as on the ``s2f fit`` command line
            (``{"model.init_args.lr": 3e-4, "model.init_args.encoder.init_args.band_limit_hz": 4000}``).
        decoder_overrides: The same for the decoder recipe.
    """

    identities: int
    clips_per_identity: int
    seconds: float
    encoder_recipe: str = "demo_encoder"
    decoder_recipe: str = "demo_decoder"
    eval_seconds: tuple[float, ...] = (3.0, 6.0)
    carrier: str = "source-filter"
    train_speech_share: float = 0.0
    train_speech_clips: int = 0
    encoder_overrides: Mapping[str, Any] = field(default_factory=dict)
    decoder_overrides: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(
        self, *, encoder: Mapping[str, Any] | None = None, decoder: Mapping[str, Any] | None = None
    ) -> DemoPlan:
        """This plan with more recipe settings replaced (added to the overrides it has; later keys win)."""
        return replace(
            self,
            encoder_overrides={**self.encoder_overrides, **(encoder or {})},
            decoder_overrides={**self.decoder_overrides, **(decoder or {})},
        )

    def encoder_setting(self, key: str, default: Any = None) -> Any:
        """The encoder recipe's ``key`` (dotted, as on the command line) after the overrides, else ``default``."""
        return _setting(self.encoder_recipe, self.encoder_overrides, key, default)

    def decoder_setting(self, key: str, default: Any = None) -> Any:
        """The decoder recipe's ``key`` after the overrides, else ``default``."""
        return _setting(self.decoder_recipe, self.decoder_overrides, key, default)

    def as_record(self) -> dict[str, Any]:
        """The plan as JSON values (what ``demo.json`` keeps); :meth:`from_record` reads it back."""
        return json.loads(json.dumps({name: getattr(self, name) for name in self.__dataclass_fields__}))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DemoPlan:
        """The plan :meth:`as_record` wrote."""
        return cls(**{**record, "eval_seconds": tuple(record.get("eval_seconds", (3.0, 6.0)))})


def override_arguments(overrides: Mapping[str, Any]) -> list[str]:
    """``--key value`` arguments for LightningCLI, values as YAML (JSON is YAML) so every type parses back."""
    arguments = []
    for key, value in overrides.items():
        arguments += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return arguments


def _setting(recipe: str, overrides: Mapping[str, Any], key: str, default: Any) -> Any:
    if key in overrides:
        return overrides[key]
    import yaml

    from ..train.bundled_recipes import resolve_recipe

    with open(resolve_recipe(recipe), encoding="utf-8") as handle:
        value: Any = yaml.safe_load(handle)
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


DEMO_PLANS = {
    "default": DemoPlan(identities=300, clips_per_identity=3, seconds=6.0),
    "quick": DemoPlan(identities=120, clips_per_identity=2, seconds=3.0, encoder_recipe="demo_quick_encoder",
                      eval_seconds=(3.0,)),
    # The paper's CNN on the default world (see recipes/demo_paper_cnn_encoder.yaml).
    "paper-cnn": DemoPlan(identities=300, clips_per_identity=3, seconds=6.0, encoder_recipe="demo_paper_cnn_encoder"),
}  # fmt: skip
