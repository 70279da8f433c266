import json

import pandas as pd
import pytest
import torch
from experiment_world import (
    tiny_train_settings,
    write_trainsets,
    write_world,
)
from transformers import TrainerCallback

from rewardcond.methods import get_method
from rewardcond.modeling import RewardConditionedLM
from rewardcond.train import TrainSettings, train_method

SETTINGS = tiny_train_settings(global_batch_size=8, per_device_batch_size=4, max_steps=12)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("world")
    paths = write_world(root, tiny_tokenizer)
    return write_trainsets(root, paths, ("scalar", "sft", "tokens"))


def _train(world, tmp_path, method, settings=SETTINGS, name="model", callbacks=()):
    return train_method(
        get_method(method),
        trainset_path=world[method],
        base_path=world["base"],
        output_dir=str(tmp_path / name),
        checkpoint_dir=str(tmp_path / f"{name}-checkpoints"),
        settings=settings,
        seed=3,
        device="cpu",
        callbacks=callbacks,
    )


@pytest.mark.parametrize("method", ["scalar", "sft", "tokens"])
def test_training_lowers_loss_and_writes_a_loadable_model(world, tmp_path, method):
    _train(world, tmp_path, method)
    out = tmp_path / "model"
    curve = pd.read_csv(out / "loss.csv")
    assert list(curve["step"]) == list(range(1, 13))
    assert curve["loss"].iloc[-3:].mean() < 0.7 * curve["loss"].iloc[:3].mean()
    assert (out / "loss.png").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["method"] == method
    assert manifest["params"]["gradient_accumulation_steps"] == 2
    assert manifest["params"]["train"]["learning_rate"] == 1e-2
    assert manifest["seed"] == 3 and manifest["global_step"] == 12
    assert set(manifest["inputs"]) == {world[method], world["base"]}
    assert manifest["resumed_from"] is None

    model, tokenizer = get_method(method).load_model(str(out))
    assert isinstance(model, RewardConditionedLM) == (method == "scalar")
    if method == "scalar":
        rewards = pd.read_parquet(world["scalar"])["reward"]
        assert model.scaler.transform([rewards.mean()])[0] == pytest.approx(0.0, abs=1e-6)
    if method == "tokens":
        assert len(tokenizer) == model.get_input_embeddings().num_embeddings


def test_a_killed_run_resumes_from_its_last_checkpoint(world, tmp_path):
    settings = TrainSettings(**{**SETTINGS.__dict__, "max_steps": 6, "save_steps": 2})

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 4:
                raise KeyboardInterrupt("killed after the checkpoint of step 4")

    with pytest.raises(KeyboardInterrupt):
        _train(world, tmp_path, "scalar", settings, name="resumed", callbacks=[Kill()])
    assert not (tmp_path / "resumed").exists()
    assert (tmp_path / "resumed-checkpoints" / "checkpoint-4").is_dir()
    _train(world, tmp_path, "scalar", settings, name="resumed")
    _train(world, tmp_path, "scalar", settings, name="straight")

    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert manifest["resumed_from"].endswith("checkpoint-4")
    resumed = RewardConditionedLM.from_pretrained(tmp_path / "resumed").state_dict()
    straight = RewardConditionedLM.from_pretrained(tmp_path / "straight").state_dict()
    assert resumed.keys() == straight.keys()
    for key in resumed:
        assert torch.equal(resumed[key], straight[key]), key
    resumed_curve = pd.read_csv(tmp_path / "resumed" / "loss.csv")
    straight_curve = pd.read_csv(tmp_path / "straight" / "loss.csv")
    pd.testing.assert_frame_equal(resumed_curve, straight_curve)


def test_checkpoints_of_other_settings_are_discarded(world, tmp_path):
    settings = TrainSettings(**{**SETTINGS.__dict__, "max_steps": 2, "save_steps": 2})
    _train(world, tmp_path, "sft", settings)
    assert (tmp_path / "model-checkpoints" / "checkpoint-2").is_dir()
    changed = TrainSettings(**{**settings.__dict__, "learning_rate": 5e-3})
    _train(world, tmp_path, "sft", changed)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["resumed_from"] is None


def test_batch_plan_that_does_not_divide_names_the_key(world, tmp_path):
    settings = TrainSettings(
        **{**SETTINGS.__dict__, "global_batch_size": 6, "gradient_accumulation_steps": 4}
    )
    with pytest.raises(ValueError, match=r"train\.gradient_accumulation_steps=4 does not divide"):
        _train(world, tmp_path, "sft", settings)
