"""The verl GRPO command: its overrides composed against verl 0.9.1's own Hydra config (the installed package's
``trainer/config``), then put through the checks verl runs at start-up, on the CPU."""

import copy
import importlib.metadata
import importlib.util
import json
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from hypothesis import example, given
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf, open_dict

from training.backends.tiny_vlm import tiny_qwen_vl_processor_save
from training.backends.verl_command import (
    BALANCED_DATASET_CLASS,
    BALANCED_DATASET_PATH,
    DEFAULT_REWARD_PATH,
    GrpoHyperparameters,
    VerlRunSpec,
    hydra_value,
    verl_command,
    verl_command_text,
    verl_overrides,
)

VERL_CONFIG_DIR = Path(importlib.util.find_spec("verl").submodule_search_locations[0]) / "trainer" / "config"

# Strings that Hydra's grammar or OmegaConf would read as something else if written as they are.
AWKWARD_STRINGS = [
    "/data/my runs/twin v3/train.parquet",  # spaces
    "/data/a,b/x=y/test.parquet",  # list separator and "="
    "/data/it's [here]/{x: 1}.parquet",  # quote, brackets, braces, colon
    "C:\\runs\\",  # backslashes, one before the closing quote
    "\\'",  # backslash then quote
    "${oc.env:HOME}/x",  # an OmegaConf interpolation
    "\\${x}",  # a backslash before one
    "true",  # Hydra's bool
    "null",
    "1e-06",  # a float
    "42",  # an int
    "inf",
    "-x",
    "tab\tand\nnewline",
    "Qwen/Qwen2.5-VL-3B-Instruct",  # plain: written bare
]


def spec_make(**changes) -> VerlRunSpec:
    values = {
        "model": "Qwen/Qwen2.5-VL-3B-Instruct",
        "train_files": ["/data/twin/train.parquet"],
        "val_files": ["/data/twin/test.parquet"],
        "output_dir": "/checkpoints/twin-grpo",
        "experiment_name": "qwen2.5-vl-3b-twin",
    }
    return VerlRunSpec(**{**values, **changes})


def composed(overrides: list[str]) -> DictConfig:
    """verl's trainer config with the overrides, as ``main_ppo``'s ``@hydra.main`` composes it."""
    with initialize_config_dir(config_dir=str(VERL_CONFIG_DIR), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def test_the_installed_verl_is_the_one_the_keys_were_checked_against():
    assert importlib.metadata.version("verl") == "0.9.1"
    assert (VERL_CONFIG_DIR / "ppo_trainer.yaml").is_file()


def test_overrides_compose_into_the_papers_grpo():
    spec = spec_make(
        train_files=["/data/twin/train.parquet", "/data/extra/train.parquet"],
        reward_path="/opt/twin/training/reward.py",
        gpus_per_node=4,
        nodes=2,
        logger=["console", "wandb"],
    )

    config = composed(verl_overrides(spec))

    assert config.algorithm.adv_estimator == "grpo"
    assert config.algorithm.norm_adv_by_std_in_grpo is False  # the paper's Eq. 1: centred, not scaled
    assert config.algorithm.use_kl_in_reward is False
    assert config.critic.enable is False

    data = config.data
    assert list(data.train_files) == ["/data/twin/train.parquet", "/data/extra/train.parquet"]
    assert list(data.val_files) == ["/data/twin/test.parquet"]
    assert (data.prompt_key, data.image_key) == ("prompt", "images")
    assert (data.max_prompt_length, data.max_response_length) == (2048, 2048)
    assert data.train_batch_size == 480
    assert data.filter_overlong_prompts is True
    assert data.truncation == "error"
    # Balanced batches (the default): the balanced dataset orders the rows, verl's sampler keeps its order.
    assert data.custom_cls.path == BALANCED_DATASET_PATH
    assert data.custom_cls.name == BALANCED_DATASET_CLASS
    assert data.balance == "oversample"
    assert data.shuffle is False
    assert data.seed == 1
    assert data.return_raw_chat is True

    model = config.actor_rollout_ref.model
    assert model.path == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert model.enable_gradient_checkpointing is True
    assert model.use_remove_padding is True

    actor = config.actor_rollout_ref.actor
    assert actor.optim.optimizer == "AdamW"
    assert actor.optim.lr == 1e-6
    assert actor.optim.weight_decay == 0.01
    assert actor.optim.lr_scheduler_type == "constant"
    assert actor.optim.lr_warmup_steps_ratio == 0.0
    assert actor.optim.clip_grad == 1.0
    assert actor.grad_clip == 1.0
    assert actor.ppo_mini_batch_size == 480  # one update per batch
    assert actor.ppo_micro_batch_size_per_gpu == 4
    assert actor.use_dynamic_bsz is False
    assert actor.ppo_epochs == 1
    assert (actor.clip_ratio, actor.clip_ratio_low, actor.clip_ratio_high) == (0.2, 0.2, 0.2)
    assert actor.use_kl_loss is True
    assert actor.kl_loss_coef == 0.01
    assert actor.kl_loss_type == "low_var_kl"
    assert actor.entropy_coeff == 0
    assert actor.freeze_vision_tower is False
    assert actor.rollout_n == 5  # an interpolation of rollout.n, resolved
    for role in ("actor", "ref"):
        mixed_precision = config.actor_rollout_ref[role].fsdp_config.mixed_precision
        assert dict(mixed_precision) == {
            "param_dtype": "bf16",
            "reduce_dtype": "fp32",
            "buffer_dtype": "fp32",
        }
    assert config.actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu == 8

    rollout = config.actor_rollout_ref.rollout
    assert (rollout.name, rollout.mode) == ("vllm", "async")
    assert rollout.n == 5
    assert (rollout.temperature, rollout.top_p, rollout.top_k) == (1.0, 1.0, -1)
    assert rollout.dtype == "bfloat16"
    assert rollout.tensor_model_parallel_size == 1
    assert rollout.gpu_memory_utilization == 0.6
    assert rollout.log_prob_micro_batch_size_per_gpu == 8
    assert (rollout.prompt_length, rollout.response_length) == (2048, 2048)  # interpolated from data.*

    assert config.reward.custom_reward_function.path == "/opt/twin/training/reward.py"
    assert config.reward.custom_reward_function.name == "compute_score"

    trainer = config.trainer
    assert trainer.v1.trainer_mode == "sync"
    assert (trainer.n_gpus_per_node, trainer.nnodes) == (4, 2)
    assert trainer.total_epochs == 1
    assert trainer.total_training_steps is None  # the epochs decide
    assert (trainer.project_name, trainer.experiment_name) == ("twin", "qwen2.5-vl-3b-twin")
    assert trainer.default_local_dir == "/checkpoints/twin-grpo"
    assert list(trainer.logger) == ["console", "wandb"]
    assert (trainer.save_freq, trainer.test_freq) == (100, 50)
    assert trainer.val_before_train is True


def test_hyperparameters_reach_their_keys():
    """Every hyperparameter moves its key: none is a constant in disguise."""
    hyperparameters = GrpoHyperparameters(
        train_batch_size=64,
        group_size=8,
        max_prompt_length=1024,
        max_response_length=512,
        learning_rate=3e-6,
        weight_decay=0.0,
        kl_coef=0.05,
        clip_ratio=0.28,
        epochs=3,
        max_steps=200,
        temperature=0.7,
        top_p=0.9,
        grad_clip=0.5,
        normalize_advantage_by_std=True,
        ppo_mini_batch_size=16,
        micro_batch_size_per_gpu=2,
        log_prob_micro_batch_size_per_gpu=16,
        rollout_gpu_memory_utilization=0.45,
        tensor_model_parallel_size=2,
    )
    spec = spec_make(
        hyperparameters=hyperparameters, shuffle=False, balance="off", seed=7, save_freq=-1, test_freq=7
    )

    config = composed(verl_overrides(spec))

    actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    assert config.data.train_batch_size == 64
    assert rollout.n == 8
    assert (config.data.max_prompt_length, config.data.max_response_length) == (1024, 512)
    assert (actor.optim.lr, actor.optim.weight_decay) == (3e-6, 0.0)
    assert actor.kl_loss_coef == 0.05
    assert (actor.clip_ratio, actor.clip_ratio_low, actor.clip_ratio_high) == (0.28, 0.28, 0.28)
    assert config.trainer.total_epochs == 3
    assert config.trainer.total_training_steps == 200
    assert (rollout.temperature, rollout.top_p) == (0.7, 0.9)
    assert (actor.optim.clip_grad, actor.grad_clip) == (0.5, 0.5)
    assert config.algorithm.norm_adv_by_std_in_grpo is True
    assert (actor.ppo_mini_batch_size, actor.ppo_micro_batch_size_per_gpu) == (16, 2)
    assert rollout.log_prob_micro_batch_size_per_gpu == 16
    assert config.actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu == 16
    assert (rollout.gpu_memory_utilization, rollout.tensor_model_parallel_size) == (0.45, 2)
    assert config.data.shuffle is False
    assert config.data.seed == 7
    assert config.data.custom_cls.path is None  # balance="off": verl's own RLHFDataset
    assert (config.trainer.save_freq, config.trainer.test_freq) == (-1, 7)


def test_a_misspelled_key_does_not_compose():
    spec = spec_make(extra_overrides=("actor_rollout_ref.actor.optim.lrr=1",))

    with pytest.raises(ConfigCompositionException, match="lrr"):
        composed(verl_overrides(spec))


def test_extra_overrides_come_last_and_win():
    extra = ("actor_rollout_ref.actor.optim.lr=2e-06", "trainer.max_actor_ckpt_to_keep=2")
    spec = spec_make(extra_overrides=extra)

    overrides = verl_overrides(spec)
    config = composed(overrides)

    assert tuple(overrides[-2:]) == extra
    assert "actor_rollout_ref.actor.optim.lr=1e-06" in overrides
    assert config.actor_rollout_ref.actor.optim.lr == 2e-6
    assert config.trainer.max_actor_ckpt_to_keep == 2


def test_awkward_paths_and_names_come_back_from_hydra_unchanged():
    spec = spec_make(
        model="/models/my model, v2/Qwen=3B",
        train_files=AWKWARD_STRINGS,
        val_files=["/data/it's here/test.parquet"],
        output_dir="/checkpoints/run ${name} 'quoted'",
        experiment_name='qwen, 3B = "best" run',
        project_name="twin [v3]",
        reward_path="/opt/my code/training/reward.py",
    )

    config = composed(verl_overrides(spec))

    assert list(config.data.train_files) == AWKWARD_STRINGS
    assert list(config.data.val_files) == ["/data/it's here/test.parquet"]
    assert config.actor_rollout_ref.model.path == "/models/my model, v2/Qwen=3B"
    assert config.trainer.default_local_dir == "/checkpoints/run ${name} 'quoted'"
    assert config.trainer.experiment_name == 'qwen, 3B = "best" run'
    assert config.trainer.project_name == "twin [v3]"
    assert config.reward.custom_reward_function.path == "/opt/my code/training/reward.py"


# Strings of the characters that Hydra's grammar or OmegaConf's interpolations treat specially, and any string.
@given(st.text(st.sampled_from("a \\'\"${}[],=:~\n")) | st.text())
@example("\\\n")  # a backslash before a final newline: CI's hypothesis run found it
@example("\\${x}\\")
def test_any_string_comes_back_from_hydras_parser_unchanged(text):
    """Hydra's own override parser, then OmegaConf's resolution (which reads ``${...}``), as compose does."""
    override = OverridesParser.create().parse_override(f"key={hydra_value(text)}")

    assert OmegaConf.create({"key": override.value()}).key == text


def test_values_are_written_bare_when_hydra_reads_them_back_as_they_are():
    assert hydra_value("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert hydra_value("low_var_kl") == "low_var_kl"
    assert hydra_value("True") == "'True'"
    assert hydra_value(True) == "True"
    assert hydra_value(1e-6) == "1e-06"
    assert hydra_value(["a b", "c"]) == "['a b',c]"
    with pytest.raises(ValueError, match="finite"):
        hydra_value(float("nan"))


def test_reward_keys_are_the_ones_verl_loads_the_reward_function_from(tmp_path):
    """verl 0.9.1 loads the custom reward from ``reward.custom_reward_function``; the top-level
    ``custom_reward_function`` of older versions composes but is never read by main_ppo's trainer."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    reward_file = tmp_path / "my rewards" / "reward.py"
    reward_file.parent.mkdir()
    reward_file.write_text(
        "def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n"
        "    return 1.0 if solution_str.endswith('<answer>' + ground_truth + '</answer>') else 0.0\n"
    )
    spec = spec_make(reward_path=str(reward_file))

    reward = get_custom_reward_fn(composed(verl_overrides(spec)))

    assert reward is not None
    assert (
        reward(data_source="twin", solution_str="<answer>yes</answer>", ground_truth="yes", extra_info={})
        == 1.0
    )
    assert (
        reward(data_source="twin", solution_str="<answer>no</answer>", ground_truth="yes", extra_info={})
        == 0.0
    )

    legacy = composed(
        [o for o in verl_overrides(spec) if not o.startswith("reward.custom_reward_function.path=")]
        + [f"custom_reward_function.path={hydra_value(str(reward_file))}"]
    )
    assert get_custom_reward_fn(legacy) is None


def test_default_reward_path_is_the_projects_reward_module():
    repo = Path(__file__).resolve().parents[3]

    assert Path(DEFAULT_REWARD_PATH) == repo / "training" / "reward.py"
    assert spec_make().reward_path == DEFAULT_REWARD_PATH


def test_data_keys_name_columns_of_the_verl_export():
    from training.exports.verl import SCHEMA

    config = composed(verl_overrides(spec_make()))

    columns = set(SCHEMA.names)
    assert {config.data.prompt_key, config.data.image_key, config.data.reward_fn_key} <= columns
    assert "ground_truth" in SCHEMA.field("reward_model").type.names  # what verl's reward manager reads


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny Qwen2.5-VL folder, with the ``architectures`` a real model's config.json has (verl needs it)."""
    folder = tiny_qwen_vl_processor_save(tmp_path_factory.mktemp("tiny-qwen-vl-model"))
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["Qwen2_5_VLForConditionalGeneration"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def verl_start_checks(config: DictConfig) -> None:
    """What verl 0.9.1 checks of the config before training, where it runs without GPUs.

    - ``main_ppo.main``: ``validate_config`` (batch divisibility by the GPUs, micro-batch settings, the actor
      config dataclass with its ``__post_init__`` and ``validate``);
    - ``TaskRunnerV1.run``: ``OmegaConf.resolve`` of the whole config (every interpolation);
    - ``ActorRolloutRefWorker.init_model``: the model, actor, reference and rollout config dataclasses, built
      the way the worker builds them, and its asserts on the micro-batch settings;
    - ``PPOTrainer``: the algorithm config dataclass.
    Not run: the rest of the worker and trainer start-up (Ray, the GPUs, vLLM, loading the weights).
    """
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    validate_config(
        config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )

    config = copy.deepcopy(config)
    OmegaConf.resolve(config)
    worker = config.actor_rollout_ref

    model = omega_conf_to_dataclass(worker.model)
    actor = omega_conf_to_dataclass(worker.actor)
    actor.model_config = model
    rollout = omega_conf_to_dataclass(worker.rollout)
    with open_dict(worker.ref):
        worker.ref.ppo_mini_batch_size = worker.actor.ppo_mini_batch_size
        worker.ref.ppo_micro_batch_size = worker.ref.pop("log_prob_micro_batch_size", None)
        worker.ref.ppo_micro_batch_size_per_gpu = worker.ref.pop("log_prob_micro_batch_size_per_gpu", None)
        worker.ref.use_dynamic_bsz = worker.ref.pop("log_prob_use_dynamic_bsz", False)
        worker.ref.ppo_max_token_len_per_gpu = worker.ref.pop("log_prob_max_token_len_per_gpu", None)
    omega_conf_to_dataclass(worker.ref)
    assert worker.actor.use_dynamic_bsz == worker.rollout.log_prob_use_dynamic_bsz
    if not worker.actor.use_dynamic_bsz:
        assert worker.rollout.log_prob_micro_batch_size_per_gpu is not None
        assert worker.actor.ppo_micro_batch_size_per_gpu is not None
    assert rollout.name == "vllm"

    omega_conf_to_dataclass(config.algorithm)


@pytest.mark.parametrize(("gpus_per_node", "nodes"), [(8, 1), (4, 1), (8, 2)])
def test_verl_accepts_the_composed_config_at_start(tiny_model_dir, gpus_per_node, nodes):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy

    spec = spec_make(model=str(tiny_model_dir), gpus_per_node=gpus_per_node, nodes=nodes)
    config = composed(verl_overrides(spec))

    assert need_reference_policy(config) is True  # the KL loss needs the reference model
    assert need_critic(config) is False
    verl_start_checks(config)  # raises if verl would refuse the config


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        # compose, but verl refuses them when it starts
        (("actor_rollout_ref.actor.loss_agg_mode=token-avg",), "loss_agg_mode"),
        (("actor_rollout_ref.rollout.mode=sync",), "sync"),
        (("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=null",), "ppo_micro_batch_size"),
        (("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=null",), "log_prob_micro_batch_size"),
        (("data.train_batch_size=481",), "divisible"),
        (("actor_rollout_ref.actor.optim.lr_scheduler_type=linear",), "FSDPOptimizerConfig"),
    ],
)
def test_verl_start_checks_refuse_what_verl_would_refuse(tiny_model_dir, extra, error):
    config = composed(verl_overrides(spec_make(model=str(tiny_model_dir), extra_overrides=extra)))

    with pytest.raises(Exception, match=error):
        verl_start_checks(config)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"gpus_per_node": 7}, "train_batch_size \\* group_size"),  # 2400 rollouts over 7 GPUs
        (
            # 2400 rollouts per batch split over 16 GPUs, the 150 of a mini-batch don't
            {"hyperparameters": GrpoHyperparameters(ppo_mini_batch_size=30), "gpus_per_node": 8, "nodes": 2},
            "ppo_mini_batch_size \\* group_size",
        ),
        (
            {"hyperparameters": GrpoHyperparameters(tensor_model_parallel_size=3)},
            "tensor_model_parallel_size",
        ),
    ],
)
def test_gpu_layouts_verl_would_refuse_once_started_are_refused_here(changes, error):
    with pytest.raises(ValueError, match=error):
        spec_make(**changes)


def test_hyperparameters_default_to_the_papers_table_8():
    assert GrpoHyperparameters().to_json() == {
        "train_batch_size": 480,
        "group_size": 5,
        "max_prompt_length": 2048,
        "max_response_length": 2048,
        "learning_rate": 1e-6,
        "weight_decay": 0.01,
        "kl_coef": 0.01,
        "clip_ratio": 0.2,
        "epochs": 1,
        "max_steps": None,
        "temperature": 1.0,
        "top_p": 1.0,
        "grad_clip": 1.0,
        "freeze_vision_tower": False,
        "normalize_advantage_by_std": False,
        "ppo_mini_batch_size": None,
        "micro_batch_size_per_gpu": 4,
        "log_prob_micro_batch_size_per_gpu": 8,
        "rollout_gpu_memory_utilization": 0.6,
        "tensor_model_parallel_size": 1,
    }


def test_hyperparameters_come_back_from_json():
    hyperparameters = GrpoHyperparameters(
        learning_rate=2e-6, ppo_mini_batch_size=96, normalize_advantage_by_std=True, max_steps=25
    )

    stored = json.loads(json.dumps(hyperparameters.to_json()))

    assert GrpoHyperparameters.from_json(stored) == hyperparameters
    assert GrpoHyperparameters.from_json({}) == GrpoHyperparameters()  # missing keys: the paper's values


def test_hyperparameters_from_json_take_an_int_for_a_float():
    hyperparameters = GrpoHyperparameters.from_json({"weight_decay": 0, "top_p": 1})

    assert hyperparameters.weight_decay == 0.0 and isinstance(hyperparameters.weight_decay, float)
    assert hyperparameters.top_p == 1.0 and isinstance(hyperparameters.top_p, float)


def test_hyperparameters_from_json_refuse_unknown_keys():
    with pytest.raises(ValueError, match="unknown GRPO hyperparameter\\(s\\): group, lr; known: clip_ratio"):
        GrpoHyperparameters.from_json({"lr": 1e-6, "group": 5, "epochs": 1})


@pytest.mark.parametrize("stored", [[("epochs", 1)], "epochs=1", None])
def test_hyperparameters_from_json_refuse_what_is_not_an_object(stored):
    with pytest.raises(ValueError, match="must be a JSON object"):
        GrpoHyperparameters.from_json(stored)


@pytest.mark.parametrize(
    "stored",
    [
        {"train_batch_size": "480"},
        {"train_batch_size": 480.0},
        {"train_batch_size": True},  # a bool is an int to Python, not to us
        {"learning_rate": "1e-6"},
        {"learning_rate": None},
        {"learning_rate": False},
        {"freeze_vision_tower": 0},
        {"ppo_mini_batch_size": 96.5},
        {"max_steps": 10.0},
        {"max_steps": "10"},
        {"top_p": [1.0]},
        {"kl_coef": float("nan")},
        {"learning_rate": float("inf")},
    ],
)
def test_hyperparameters_from_json_refuse_wrong_types(stored):
    (name,) = stored

    with pytest.raises(ValueError, match=f"GrpoHyperparameters.{name} must be"):
        GrpoHyperparameters.from_json(stored)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"group_size": 1}, "group_size"),
        ({"train_batch_size": 0}, "train_batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"kl_coef": -0.01}, "kl_coef"),
        ({"clip_ratio": 0.0}, "clip_ratio"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"rollout_gpu_memory_utilization": 1.0}, "rollout_gpu_memory_utilization"),
        ({"freeze_vision_tower": True}, "freeze_vision_tower"),
        ({"ppo_mini_batch_size": 100}, "must divide train_batch_size"),  # 480 / 100
        ({"ppo_mini_batch_size": 960}, "must divide train_batch_size"),
        ({"max_steps": 0}, "max_steps must be at least 1"),
    ],
)
def test_hyperparameters_refuse_values_out_of_range(changes, error):
    with pytest.raises(ValueError, match=error):
        GrpoHyperparameters(**changes)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"train_files": "/data/twin/train.parquet"},
            "train_files must be list\\[str\\]",
        ),  # a string, not a list
        ({"train_files": []}, "train_files must list"),
        ({"val_files": [""]}, "val_files must list"),
        ({"logger": "console"}, "logger must be list\\[str\\]"),
        ({"extra_overrides": ["trainer.nnodes=2"]}, "extra_overrides must be tuple\\[str, \\.\\.\\.\\]"),
        ({"hyperparameters": {"group_size": 5}}, "hyperparameters must be GrpoHyperparameters"),
        ({"experiment_name": ""}, "experiment_name"),
        ({"reward_path": "training/reward.py"}, "reward_path must be absolute"),
        ({"nodes": 0}, "nodes"),
        ({"save_freq": 0}, "save_freq"),
        ({"test_freq": -2}, "test_freq"),
        ({"balance": "sometimes"}, "balance must be one of oversample, undersample, off"),
        (
            {"balance": "undersample", "shuffle": False},
            "shuffle=False keeps the training split in file order",
        ),
        (
            {"hyperparameters": GrpoHyperparameters(train_batch_size=9), "gpus_per_node": 1},
            "needs an even train_batch_size",
        ),
        ({"seed": -1}, "seed must not be negative"),
        ({"seed": 1.0}, "seed must be int"),
    ],
)
def test_run_spec_refuses_bad_fields(changes, error):
    with pytest.raises(ValueError, match=error):
        spec_make(**changes)


def test_command_runs_verls_ppo_entry_point_with_the_overrides():
    spec = spec_make()

    assert verl_command(spec)[:3] == ["python", "-m", "verl.trainer.main_ppo"]
    command = verl_command(spec, python="/opt/venv/bin/python")
    assert command[:3] == ["/opt/venv/bin/python", "-m", "verl.trainer.main_ppo"]
    assert command[3:] == verl_overrides(spec)


def test_command_text_splits_back_into_the_command():
    spec = spec_make(
        train_files=AWKWARD_STRINGS,
        experiment_name='it\'s "quoted" $HOME `date`',
        output_dir="/checkpoints/my run",
    )

    text = verl_command_text(spec, python="/opt/my venv/bin/python")

    assert shlex.split(text) == verl_command(spec, python="/opt/my venv/bin/python")
    assert shlex.split(verl_command_text(spec_make())) == verl_command(spec_make())


@pytest.mark.parametrize("balance", ["oversample", "undersample"])
def test_balanced_batches_load_the_balanced_dataset_through_verls_custom_class(balance):
    """verl 0.9.1 picks the dataset class with ``get_dataset_class(config.data)``; it loads the file by path."""
    from verl.utils.dataset.rl_dataset import RLHFDataset, get_dataset_class

    config = composed(verl_overrides(spec_make(balance=balance, seed=3)))

    dataset_cls = get_dataset_class(config.data)
    assert dataset_cls.__name__ == BALANCED_DATASET_CLASS
    assert issubclass(dataset_cls, RLHFDataset)
    assert Path(BALANCED_DATASET_PATH) == Path(__file__).resolve().parents[3] / (
        "training/backends/verl_balanced_dataset.py"
    )
    assert (config.data.balance, config.data.shuffle, config.data.seed) == (balance, False, 3)


def test_balance_off_is_verls_dataset_and_its_shuffle():
    from verl.utils.dataset.rl_dataset import RLHFDataset, get_dataset_class

    config = composed(verl_overrides(spec_make(balance="off")))

    assert get_dataset_class(config.data) is RLHFDataset
    assert config.data.custom_cls.path is None
    assert "balance" not in config.data
    assert (config.data.shuffle, config.data.seed) == (True, 1)


def test_an_odd_batch_is_accepted_without_balancing():
    hyperparameters = GrpoHyperparameters(train_batch_size=9)

    config = composed(
        verl_overrides(spec_make(hyperparameters=hyperparameters, gpus_per_node=1, balance="off"))
    )

    assert config.data.train_batch_size == 9


def test_verl_accepts_undersampling_and_a_step_cap_at_start(tiny_model_dir):
    hyperparameters = GrpoHyperparameters(max_steps=12)
    spec = spec_make(model=str(tiny_model_dir), hyperparameters=hyperparameters, balance="undersample")
    config = composed(verl_overrides(spec))

    verl_start_checks(config)
    assert config.trainer.total_training_steps == 12
    assert config.data.balance == "undersample"
