"""The model card: a ``README.md`` that every saved model folder carries beside its weights.

A model that predicts faces from voices needs its limits stated where it is shared, not only in a
paper: :meth:`s2f.Speech2Face.save_pretrained` (and so ``s2f export``) writes this card into every
folder. It says what the model is (encoder, decoder, teacher, preprocessing, calibration), what it
was trained on and how when the caller says so, the evaluation figures beside their protocol and
chance level when an ``s2f eval`` result is given, the intended use, the limits, and the ethical
notes of Oh et al. (CVPR 2019, "Ethical considerations").

Example:
    >>> from s2f import ENCODERS, Speech2Face
    >>> card = model_card(Speech2Face(ENCODERS.create("s2f_cnn_tiny")), training={"data": "toy corpus"})
    >>> card.splitlines()[0], "## Ethical considerations" in card
    ('---', True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .._version import __version__

if TYPE_CHECKING:
    from ..decoders.face_decoder import FaceDecoder
    from ..encoders.voice_encoder import VoiceEncoder
    from .calibration import EmbeddingCalibration

__all__ = ["CARD_FILE", "DescribedModel", "model_card"]


class DescribedModel(Protocol):
    """What the card reads of a model (a :class:`~s2f.model.speech2face.Speech2Face`, which writes the card
    when it is saved, so the card names no class of its own: no import circle)."""

    @property
    def encoder(self) -> VoiceEncoder: ...
    @property
    def decoder(self) -> FaceDecoder | None: ...
    @property
    def teacher(self) -> dict[str, Any]: ...
    @property
    def calibration(self) -> EmbeddingCalibration | None: ...
    def config(self) -> dict[str, Any]: ...


CARD_FILE = "README.md"

INTENDED_USE = """\
- Research on what a voice reveals about the physical appearance of its speaker, and on the biases
  of such models; demonstrations of the idea with people who agree to have their voice used.
- Not for identifying, verifying or profiling anyone, not for deciding anything about a person, and
  not for recovering what a specific person looks like: the model cannot do that (see the limits)."""

LIMITS = """\
- The model predicts a face *embedding* consistent with a voice and draws it as a canonical face:
  an average-looking, frontal, neutral face that shares broad traits (apparent age and gender, some
  face shape) with the speaker's. It is not the speaker's true face and cannot recover their identity.
- It is only as good as the data it learned from: voices outside that data's languages, accents,
  ages, recording conditions and demographic mix are mapped less well, and its mistakes are not
  spread evenly over groups of people.
- Inputs are cropped (or loop-repeated) to the clip length above; one voice per clip is assumed."""

ETHICS = """\
Speech2Face (Oh et al., CVPR 2019) states these considerations, and they hold for this model:

- The method cannot recover the true identity of a person from their voice (an exact image of their
  face). It captures visual features common to many people (age, gender, ethnicity) that correlate
  with voice, and produces average-looking faces.
- The training data is a collection of videos from the web and does not represent the world's
  population equally; some languages and groups are under-represented, so the model can learn and
  repeat their correlations (for example between a language or an accent and an appearance).
- The model should be used with care for the privacy of the people whose voices it hears, and any
  use beyond research calls for studying its biases on the population it would be used on first."""


def model_card(
    model: DescribedModel,
    *,
    evaluation: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> str:
    """The card of ``model``, as Markdown with a YAML header.

    Args:
        model: The model the card describes.
        evaluation: The ``metrics.json`` an ``s2f eval`` run wrote for this model, if any.
        training: What the model was trained on and how, if known: ``data`` (the corpus), ``recipe``
            (the recipes or settings) and any other key, each a short text.
    """
    config = model.config()
    teacher = model.teacher.get("name", "an unnamed teacher")
    parts = [
        "---\nlibrary_name: s2f\ntags:\n- speech2face\n- voice-to-face\n---",
        f"# s2f model: voice -> {teacher} face embedding" + (" -> face" if model.decoder is not None else ""),
        "A Speech2Face model (Oh et al., CVPR 2019) saved by "
        f"[s2f](https://pypi.org/project/s2f/) {__version__}: it hears a voice and predicts the face embedding "
        f"that the face network `{teacher}` would give the speaker's face"
        + (", and draws that embedding as a face." if model.decoder is not None else "."),
        "## Model\n\n" + _table(_model_rows(model, config)),
        "## Data and teacher\n\n" + _data_section(model, training or {}),
        "## Training recipe\n\n" + _recipe_section(training or {}),
        "## Evaluation\n\n" + _evaluation_section(evaluation),
        "## Intended use\n\n" + INTENDED_USE,
        "## Limits\n\n" + LIMITS,
        "## Ethical considerations\n\n" + ETHICS,
        "## How to use\n\n" + _usage(model),
    ]
    return "\n\n".join(parts) + "\n"


def _model_rows(model: DescribedModel, config: Mapping[str, Any]) -> list[tuple[str, str]]:
    preprocessing = config["preprocessing"]
    rows = [
        ("voice encoder", f"`{config['encoder']['class_path']}`, {_parameters(model.encoder)} parameters"),
        (
            "face decoder",
            "none: predictions are embeddings only"
            if model.decoder is None
            else f"`{config['decoder']['class_path']}`, {_parameters(model.decoder)} parameters, "
            f"{model.decoder.image_size} px faces",
        ),
        ("embedding", f"{model.encoder.embed_dim}-D, in the space of `{model.teacher.get('name', '?')}`"),
        (
            "input",
            f"{preprocessing['clip_seconds']:g} s at {preprocessing['sample_rate']} Hz (longer clips are cropped, "
            f"shorter ones loop-repeated); STFT {preprocessing['n_fft']} / hop {preprocessing['hop_length']}",
        ),
    ]
    calibration = model.calibration
    if calibration is not None:
        fitted = calibration.fitted_on
        where = f" on {fitted['clips']} {fitted.get('split', '')} clips".replace("  ", " ") if fitted else ""
        drawn = f"faces drawn at {calibration.spread:.2f}x the predicted spread (fitted{where})"
        rows.append(("calibration", f"predictions moved onto the teacher's mean; {drawn}"))
    rows.append(("format", f"`{config['format']}` v{config['version']}, s2f {config['s2f_version']}"))
    return rows


def _data_section(model: DescribedModel, training: Mapping[str, Any]) -> str:
    data = training.get("data") or "not recorded when this folder was written"
    if "name" not in model.teacher:
        return f"- Training data: {data}.\n- Teacher: not recorded when this folder was written."
    teacher = model.teacher["name"]
    return (
        f"- Training data: {data}.\n"
        f"- Teacher: `{teacher}` ({model.teacher.get('embed_dim', '?')}-D), a frozen face network. The voice "
        "encoder learned to predict the teacher's embedding of the face seen with each voice, so it inherits "
        "what the teacher notices about faces and the biases of both the teacher's and the voice data."
    )


def _recipe_section(training: Mapping[str, Any]) -> str:
    recipe = training.get("recipe") or "not recorded when this folder was written"
    lines = [f"- Recipe: {recipe}."]
    lines += [f"- {key}: {value}" for key, value in training.items() if key not in ("data", "recipe")]
    lines.append(
        "- Loss (the paper's): normalised L2 to the teacher's embedding, L1 through the face decoder's first layer, "
        "and distillation through the teacher's classifier, where the recipe turns them on."
    )
    return "\n".join(lines)


def _evaluation_section(evaluation: Mapping[str, Any] | None) -> str:
    if not evaluation:
        return (
            "No evaluation was given when this folder was written. Measure one with `s2f eval --model FOLDER "
            "SHARDS`, then write the card again with `s2f export FOLDER FOLDER --eval metrics.json`."
        )
    headline = evaluation.get("headline") or {}
    data = evaluation.get("data") or {}
    where = f"the {data.get('split', '?')} split of `{data.get('root', '?')}`"
    counts = ", ".join(f"{data[k]} {k}" for k in ("clips", "speakers") if k in data)
    lines = [f"On {where} ({counts}{'; ' if counts else ''}{headline.get('seconds', '?')} of voice per clip):", ""]
    rows = [("measure", "model", "chance")]
    gallery = headline.get("gallery_size")
    for k in (1, 5, 10):
        if f"recall_at_{k}" in headline:
            rows.append((f"retrieval R@{k} (gallery of {_number(gallery)} faces)",
                         _percent(headline[f"recall_at_{k}"]), _percent(headline.get(f"chance_at_{k}"))))  # fmt: skip
    if "angle_deg" in headline:
        rows.append(("angle to the true face embedding (degrees, lower is better)", _number(headline["angle_deg"]),
                     f"{_number(headline.get('mean_face_angle_deg'))} (the mean face)"))  # fmt: skip
    if "gender_agreement" in headline:
        rows.append(("gender of the drawn face agrees with the true face's",
                     _percent(headline["gender_agreement"]), _percent(headline.get("gender_chance"))))  # fmt: skip
    lines.append(_table(rows[1:], header=rows[0]))
    protocol = evaluation.get("protocol") or {}
    notes = [f"- {name}: {protocol[name]}" for name in ("retrieval", "similarity") if name in protocol]
    if notes:
        lines += ["", "Protocol:", "", *notes]
    return "\n".join(lines)


def _usage(model: DescribedModel) -> str:
    drawing = (
        '\nprediction.image.save("face.png")\nopen("face.svg", "w").write(prediction.cartoon())'
        if model.decoder is not None
        else ""
    )
    return (
        '```python\nfrom s2f import Speech2Face\n\nmodel = Speech2Face.from_pretrained("path/to/this/folder")\n'
        f'prediction = model.predict("voice.wav")  # .embedding, .image, .landmarks{drawing}\n```\n\n'
        "Or in a browser: `s2f serve --model path/to/this/folder --gallery SHARDS` (needs `pip install 's2f[serve]'`)."
    )


def _table(rows: list[tuple[str, str]] | list[tuple[str, str, str]], header: tuple[str, ...] = ("", "")) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _parameters(module: Any) -> str:
    count = sum(p.numel() for p in module.parameters())
    return f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count:,}"


def _percent(value: Any) -> str:
    return "?" if value is None else f"{100 * float(value):.1f}%"


def _number(value: Any) -> str:
    return "?" if value is None else f"{float(value):.1f}" if isinstance(value, float) and value % 1 else f"{value:g}"
