"""The demo's plans are recipes: each loads as `s2f fit` loads it, and the demo's stages train what `s2f fit` trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from helpers.faces import make_faces
from helpers.fit import weights
from helpers.shards import write_shards
from media import tone
from s2f import TEACHERS
from s2f.cli import main
from s2f.config.components import build_component
from s2f.data import ClipRecord
from s2f.demo import DEMO_PLANS
from s2f.demo.plans import override_arguments
from s2f.demo.stages import DECODER_FOLDER, _fit_decoder, _fit_encoder
from s2f.encoders import ENCODERS, VoiceEncoder
from s2f.train.bundled_recipes import recipe_names, recipe_path

# The registered model and options each plan's encoder recipe spells out as a class and its arguments.
REGISTERED = {
    "demo_encoder": (
        "s2f_conformer_tiny",
        {
            "embed_dim": 128,
            "frequency_subsampling": 2,
            "pitch_statistics": True,
            "envelope_only": True,
            "band_limit_hz": 4000.0,
            "crop_to_band": True,
        },
    ),
    "demo_quick_encoder": ("s2f_conformer_tiny", {"embed_dim": 128, "frequency_subsampling": 2}),
    "demo_paper_cnn_encoder": ("s2f_cnn_tiny", {"embed_dim": 128, "hidden_dim": 256}),
}


def _faces_and_voices(folder: Path) -> Path:
    """24 training and 4 held-out people (a face with landmarks, a voice whose pitch is the person's), embedded by
    vggface_tiny: what both of the demo's stages read."""
    faces, shapes = make_faces(28, 0)
    teacher = TEACHERS.create("vggface_tiny")
    embeddings = teacher.embed_images(torch.from_numpy(faces).permute(0, 3, 1, 2)).numpy()
    records = (
        ClipRecord(f"clip{i}", f"person{i}", tone(1.0, 100.0 + 10 * i), faces[i], embeddings[i], shapes[i],
                   split="train" if i < 24 else "val")
        for i in range(len(faces))
    )  # fmt: skip
    return write_shards(folder / "shards", records, teacher=teacher.name, embed_dim=teacher.embed_dim)


# The quick plan on those shards: vggface_tiny's 64-D embeddings, two short epochs, a small linear face model.
TINY = DEMO_PLANS["quick"].with_overrides(
    encoder={
        "model.init_args.teacher": "vggface_tiny",
        "model.init_args.encoder.init_args.embed_dim": 64,
        "trainer.max_epochs": 2,
        "data.init_args.batch_size": 4,  # 6 steps an epoch
        "data.init_args.clip_seconds": 1.0,
    },
    decoder={
        "model.init_args.decoder.init_args.embed_dim": 64,
        "model.init_args.decoder.init_args.components": 8,
        "model.init_args.decoder.init_args.image_size": 64,
        "model.init_args.decoder.init_args.flow_size": 32,
        "model.init_args.mean_face_clips": 16,
    },
)


@pytest.mark.parametrize("plan", sorted(DEMO_PLANS))
def test_each_plans_recipes_are_bundled_and_load_as_s2f_fit_loads_them(
    plan: str, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = DEMO_PLANS[plan]
    assert {chosen.encoder_recipe, chosen.decoder_recipe} <= set(recipe_names())  # so `s2f recipes` lists them
    stages = ((chosen.encoder_recipe, chosen.encoder_setting), (chosen.decoder_recipe, chosen.decoder_setting))
    for recipe, setting in stages:
        with pytest.raises(SystemExit) as exited:
            main(["fit", "--config", recipe, "--print_config"])
        assert exited.value.code == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        assert printed["trainer"]["max_epochs"] == setting("trainer.max_epochs")
        assert printed["model"]["class_path"] == setting("model.class_path")
        assert printed["data"]["init_args"]["batch_size"] == setting("data.init_args.batch_size") == 16


@pytest.mark.parametrize("recipe", sorted(REGISTERED))
def test_an_encoder_recipe_builds_the_registered_model_it_names(recipe: str) -> None:
    # The same weights from the same seed: the recipe is the registered model with the plan's options, no other.
    spec = yaml.safe_load(recipe_path(recipe).read_text())["model"]["init_args"]["encoder"]
    torch.manual_seed(0)
    from_recipe = build_component(spec, VoiceEncoder).state_dict()
    name, options = REGISTERED[recipe]
    torch.manual_seed(0)
    registered = ENCODERS.create(name, **options).state_dict()
    assert from_recipe.keys() == registered.keys()
    assert all(torch.equal(from_recipe[key], registered[key]) for key in registered)


def test_plan_overrides_reach_the_recipe_as_command_line_values() -> None:
    plan = DEMO_PLANS["default"].with_overrides(encoder={"model.init_args.lr": 3e-4})
    assert plan.encoder_setting("model.init_args.lr") == 3e-4
    assert DEMO_PLANS["default"].encoder_setting("model.init_args.lr") == 1e-3  # the plan itself is unchanged
    assert plan.encoder_setting("trainer.max_epochs") == 45 and plan.encoder_setting("trainer.no_such", "x") == "x"
    assert override_arguments({"model.init_args.eps": 1e-8, "trainer.precision": "bf16-mixed", "a.b": [0.5, 0.9]}) == [
        "--model.init_args.eps", "1e-08", "--trainer.precision", "bf16-mixed", "--a.b", "[0.5, 0.9]",
    ]  # fmt: skip


@pytest.mark.slow  # two trainings through the CLI: about 8 s
@pytest.mark.timeout(600)
def test_the_demos_stages_train_what_s2f_fit_trains_with_the_same_recipe(shard_factory, tmp_path: Path) -> None:
    shards = shard_factory.build("demo-recipes", _faces_and_voices)
    _fit_decoder(shards, tmp_path / "decoder", TINY, 0, False)
    decoder = tmp_path / "decoder" / DECODER_FOLDER
    model, losses = _fit_encoder(shards, tmp_path / "demo", decoder, TINY, 0, False)
    assert len(losses) == 2 and all(loss > 0 for loss in losses)

    # The same recipe on the command line, as its opening comment shows, with a checkpoint to read the weights from.
    run = tmp_path / "fit"
    checkpoint = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(run / "ckpt")},
    }
    (tmp_path / "checkpoint.yaml").write_text(
        yaml.safe_dump({"trainer": {"enable_checkpointing": True, "callbacks": [checkpoint]}})
    )
    main(
        ["fit", "--config", TINY.encoder_recipe, *override_arguments(TINY.encoder_overrides),
         "--config", str(tmp_path / "checkpoint.yaml"), "--data.init_args.data_dir", str(shards),
         "--model.init_args.decoder", str(decoder), "--trainer.default_root_dir", str(run),
         "--trainer.logger.init_args.save_dir", str(run), "--trainer.enable_progress_bar", "false"]
    )  # fmt: skip
    (saved,) = (run / "ckpt").glob("*.ckpt")
    step, state = weights(saved)
    assert step > 2  # two epochs of several steps
    trained = model.encoder.state_dict()
    assert all(torch.equal(state[f"encoder.{key}"], value) for key, value in trained.items())
    torch.manual_seed(0)  # the recipe's encoder as it started (the seed, then the encoder first: see the test above)
    untrained = ENCODERS.create("s2f_conformer_tiny", embed_dim=64, frequency_subsampling=2).state_dict()
    assert not all(torch.equal(untrained[key], value) for key, value in trained.items())  # it did train
