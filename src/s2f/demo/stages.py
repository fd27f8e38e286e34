"""The demo's run: synthesise a world, prepare shards, fit the decoder and the encoder, export, evaluate.

Each stage is timed and its output kept in the demo folder; :func:`run_demo` returns where it all is
and what the evaluation measured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._noise import quiet_lightning
from ..errors import ConfigError
from .plans import DEMO_PLANS, EMBED_DIM, TEACHER, DemoPlan, override_arguments

if TYPE_CHECKING:
    from ..decoders.face_decoder import FaceDecoder
    from ..synth import SynthWorld

__all__ = ["DemoResult", "run_demo"]

DECODER_FOLDER = "model"  # the decoder stage's saved decoder, beside its logs


@dataclass
class DemoResult:
    """Where the demo wrote things and what it measured.

    Attributes:
        out: The demo folder.
        model_dir: The saved model (encoder + decoder), for :meth:`s2f.Speech2Face.from_pretrained`.
        report_path: The evaluation report (HTML).
        metrics: The evaluation's metrics (as in ``metrics.json``).
        stage_seconds: Wall-clock time of each stage.
        train_loss: The encoder's training loss, first and last epoch.
        summary: The evaluation's plain-text summary table.
    """

    out: Path
    model_dir: Path
    report_path: Path | None
    metrics: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    train_loss: list[float] = field(default_factory=list)
    summary: str = ""


def run_demo(
    out: str | Path = "runs/demo",
    *,
    quick: bool = False,
    seed: int = 0,
    plan: str | DemoPlan | None = None,
    sources: tuple[str, ...] | None = None,
    progress: bool = True,
) -> DemoResult:
    """Runs the demo into ``out`` and returns what it measured.

    Every stage writes into its own folder under ``out`` (``world/``, ``shards/``, ``decoder/``,
    ``encoder/``, ``model/``, ``eval/``); run again on the same folder, the world and the shards are
    reused rather than rebuilt.

    Args:
        out: Folder for everything the demo writes.
        quick: The small plan (``DEMO_PLANS["quick"]``): a few minutes at most on two cores.
        seed: Seed of the world and of training.
        plan: A plan's name in :data:`DEMO_PLANS` (``default``, ``quick``, ``paper-cnn``) or a custom
            plan (either overrides ``quick``).
        sources: The photos the world's faces are morphs of (see :func:`s2f.synth.synthesize_world`);
            ``public-domain`` makes a world whose faces, and so the report's, may be published.
        progress: Progress bars.
    """
    out = Path(out)
    if isinstance(plan, str):
        if plan not in DEMO_PLANS:
            raise ConfigError(f"no demo plan {plan!r}; choose one of {', '.join(DEMO_PLANS)}")
        plan = DEMO_PLANS[plan]
    plan = plan or DEMO_PLANS["quick" if quick else "default"]
    quiet_lightning()  # the demo's output is its own stages: no device banners, tips or deprecations
    timer = _StageTimer()
    stages = 6

    with timer.stage(f"[1/{stages}] synthesising {plan.identities} people x {plan.clips_per_identity} clips", "synth"):
        world = _synthesize(out / "world", plan, seed, sources, progress)
    with timer.stage(f"[2/{stages}] preparing shards (detect, align, embed with {TEACHER})", "prepare"):
        shards = _prepare(world, out / "shards", plan, progress)
    decoder_epochs = plan.decoder_setting("trainer.max_epochs")
    how = f"{decoder_epochs} epochs" if decoder_epochs else "closed form"
    with timer.stage(f"[3/{stages}] fitting the face decoder ({how})", "decoder"):
        _fit_decoder(shards, out / "decoder", plan, seed, progress)
    encoder_epochs = plan.encoder_setting("trainer.max_epochs")
    with timer.stage(f"[4/{stages}] fitting the voice encoder ({encoder_epochs} epochs)", "encoder"):
        decoder = out / "decoder" / DECODER_FOLDER
        model, train_loss = _fit_encoder(shards, out / "encoder", decoder, plan, seed, progress)
    model_dir = model.save_pretrained(out / "model")
    with timer.stage(f"[5/{stages}] evaluating held-out voices", "eval"):
        from ..eval import evaluate
        from ..eval.protocol import REPORTED_SPLIT

        evaluation = evaluate(
            model, shards, split=REPORTED_SPLIT, out_dir=out / "eval", seconds=plan.eval_seconds, seed=seed,
            progress=progress, title="s2f demo: a synthetic world",
        )  # fmt: skip
    # The folder was saved before the evaluation existed: save it again, its card with the figures.
    _write_card(model, model_dir, evaluation.metrics, plan, seed, sources)
    result = DemoResult(
        out=out,
        model_dir=model_dir,
        report_path=evaluation.report_path,
        metrics=evaluation.metrics,
        stage_seconds=timer.seconds,
        train_loss=train_loss,
        summary=evaluation.summary(),
    )
    record = {"plan": plan.as_record(), "stage_seconds": timer.seconds, "train_loss": train_loss}
    (out / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"[6/{stages}] done in {sum(timer.seconds.values()):.0f} s")
    _print_summary(result)
    return result


# -- stages ----------------------------------------------------------------------------------------


def _synthesize(folder: Path, plan: DemoPlan, seed: int, sources: tuple[str, ...] | None, progress: bool) -> SynthWorld:
    from ..synth import WorldSpec, synthesize_world

    world = WorldSpec(identities=plan.identities, clips_per_identity=plan.clips_per_identity, seconds=plan.seconds,
                      seed=seed, carrier=plan.carrier, sources=sources,
                      train_speech_share=plan.train_speech_share,
                      train_speech_clips=plan.train_speech_clips)  # fmt: skip
    return synthesize_world(folder, world, progress=progress)


def _write_card(
    model: Any, folder: Path, metrics: dict[str, Any], plan: DemoPlan, seed: int, sources: tuple[str, ...] | None
) -> None:
    photos = ", ".join(sources) if sources else "all 13 package photos"
    training = {
        "data": f"s2f demo's synthetic world, seed {seed}: {plan.identities} identities x {plan.clips_per_identity} "
        f"clips of {plan.seconds:g} s, faces morphed from {photos}; the encoder trained on the train split",
        "recipe": _recipe_line(plan),
    }
    model.save_pretrained(folder, evaluation=metrics, training=training)


def _recipe_line(plan: DemoPlan) -> str:
    encoder = str(plan.encoder_setting("model.init_args.encoder.class_path", "?")).rsplit(".", 1)[-1]
    overrides = {**plan.decoder_overrides, **plan.encoder_overrides}
    return (
        f"s2f demo: the recipes {plan.decoder_recipe} and {plan.encoder_recipe}"
        + (f" with {overrides}" if overrides else "")
        + f" ({encoder}, {plan.encoder_setting('trainer.max_epochs')} epochs, batch "
        f"{plan.encoder_setting('data.init_args.batch_size')}, {plan.encoder_setting('data.init_args.clip_seconds')} s "
        f"windows, {plan.encoder_setting('trainer.precision')})"
    )


def _prepare(world: SynthWorld, folder: Path, plan: DemoPlan, progress: bool) -> Path:
    from ..prepare import prepare

    summary = prepare(
        world.tasks(), folder, TEACHER, max_seconds=plan.seconds, min_seconds=min(plan.seconds, 3.0),
        accelerator="cpu", devices=1, progress=progress,
    )  # fmt: skip
    if summary.rejected:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(summary.rejected.items()))
        print(f"      {sum(summary.rejected.values())} clips rejected ({reasons}); see {folder / 'rejects.jsonl'}")
    return folder


def _fit_decoder(shards: Path, folder: Path, plan: DemoPlan, seed: int, progress: bool) -> FaceDecoder:
    """The plan's face decoder, trained by its recipe into ``folder`` and saved in ``folder/model``."""
    from ..model.decoder_folder import save_decoder

    cli = _fit_recipe(plan.decoder_recipe, plan.decoder_overrides, _run_settings(shards, folder, seed, progress))
    system = cli.model
    decoder: FaceDecoder = system.decoder.eval()
    save_decoder(decoder, folder / DECODER_FOLDER, teacher=system.embedding_teacher)
    return decoder


def _fit_encoder(
    shards: Path, folder: Path, decoder: FaceDecoder | str | Path | None, plan: DemoPlan, seed: int, progress: bool
) -> tuple[Any, list[float]]:
    """The plan's voice encoder, trained by its recipe into ``folder``, as a calibrated model with ``decoder``
    (a trained decoder, or its folder), and the training loss of its first and last epoch."""
    import csv

    from ..eval.calibrate import calibrate_on_shards
    from ..eval.protocol import REPORTED_SPLIT

    run = _run_settings(shards, folder, seed, progress)
    if decoder is not None and not isinstance(decoder, str | Path):
        from ..model.decoder_folder import save_decoder

        # The recipe names its decoder as `s2f fit` would: by folder.
        decoder = save_decoder(decoder, folder / "decoder", teacher={"name": TEACHER, "embed_dim": EMBED_DIM})
    if decoder is not None:
        run["model.init_args.decoder"] = str(decoder)
    cli = _fit_recipe(plan.encoder_recipe, plan.encoder_overrides, run)
    trainer, system = cli.trainer, cli.model
    assert trainer.logger is not None and trainer.logger.log_dir is not None
    with Path(trainer.logger.log_dir, "metrics.csv").open() as handle:
        losses = [float(r["train/loss_epoch"]) for r in csv.DictReader(handle) if r.get("train/loss_epoch")]
    system.clip_seconds = plan.seconds  # the model hears whole clips at inference, as in the paper
    model = system.export()
    # Fitted on the training clips; the split the demo reports is refused (s2f.eval.protocol).
    calibrate_on_shards(model, shards, "train", seed=seed, progress=progress, reported_split=REPORTED_SPLIT)
    return model, losses[:1] + losses[-1:]


def _run_settings(shards: Path, folder: Path, seed: int, progress: bool) -> dict[str, Any]:
    """What a demo run sets in a recipe: where the shards are, where the stage writes, the seed, progress bars."""
    return {
        "seed_everything": seed,
        "data.init_args.data_dir": str(shards),
        "data.init_args.seed": seed,
        "trainer.default_root_dir": str(folder),
        "trainer.logger.init_args.save_dir": str(folder),
        "trainer.enable_progress_bar": progress,
    }


def _fit_recipe(recipe: str, overrides: Mapping[str, Any], run: Mapping[str, Any]) -> Any:
    """Fits as ``s2f fit --config RECIPE --key value ...`` does (the plan's overrides, then the run's); returns
    the LightningCLI, which holds the trained system (``.model``) and its trainer."""
    from ..train.bundled_recipes import resolve_recipe
    from ..train.lightning_cli import run_lightning_cli

    arguments = ["fit", "--config", resolve_recipe(recipe), *override_arguments({**overrides, **run})]
    return run_lightning_cli(arguments)


# -- reporting -------------------------------------------------------------------------------------


class _StageTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, message: str, name: str) -> Iterator[None]:
        print(message, flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 1)
        print(f"      {name}: {self.seconds[name]:.0f} s", flush=True)


def _print_summary(result: DemoResult) -> None:
    print()
    print(result.summary)
    print()
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.stage_seconds.items())
    print(f"time: {stages}")
    if len(result.train_loss) == 2:
        print(f"encoder training loss: {result.train_loss[0]:.4f} -> {result.train_loss[1]:.4f}")
    print(f"model:  {result.model_dir}  (s2f.Speech2Face.from_pretrained)")
    if result.report_path is not None:
        print(f"report: {result.report_path}")
