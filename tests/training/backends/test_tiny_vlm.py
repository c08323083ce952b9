"""The tiny Qwen2.5-VL processor: saved to a folder, loaded back offline by transformers and by verl, and used as
Qwen2.5-VL's processor is used on a two-image prompt."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from training.backends.tiny_vlm import (
    ENDOFTEXT,
    IM_END,
    IMAGE_PAD,
    SPECIAL_TOKENS,
    VISION_END,
    VISION_START,
)

MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "image"},
            {"type": "image"},
            {"type": "text", "text": "Same object? <answer></answer>"},
        ],
    }
]

# transformers' processor turns its inputs into a numpy array the way numpy 2 warns about (not our code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, size=(100, 200, 3), dtype=np.uint8)),  # 200x100
        Image.fromarray(rng.integers(0, 256, size=(300, 60, 3), dtype=np.uint8)),  # 60x300
    ]


@pytest.fixture(scope="module")
def processor(tiny_processor_dir):
    return AutoProcessor.from_pretrained(tiny_processor_dir, local_files_only=True)


def test_the_folder_loads_back_offline_as_qwen_processor_and_tokenizer(processor, tiny_processor_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_processor_dir, local_files_only=True)

    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.image_processor).__name__ in ("Qwen2VLImageProcessor", "Qwen2VLImageProcessorFast")
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    ids = [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS]
    assert len(set(ids)) == len(SPECIAL_TOKENS) and all(0 <= id < len(tokenizer) for id in ids)
    for token in SPECIAL_TOKENS:  # each special token is one token, never split into pieces
        assert tokenizer.encode(token, add_special_tokens=False) == [tokenizer.convert_tokens_to_ids(token)]
    assert (tokenizer.eos_token, tokenizer.pad_token) == (IM_END, ENDOFTEXT)
    assert len(tokenizer.encode("\n", add_special_tokens=False)) == 1
    text = "Two mugs: one blue, one with a chipped rim. Ünïcödé too! <answer>no</answer>"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_the_chat_template_renders_image_parts_as_qwen_does(processor, tiny_processor_dir):
    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)

    vision = f"{VISION_START}{IMAGE_PAD}{VISION_END}"
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{vision}{vision}Same object? <answer></answer><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_processor_dir, local_files_only=True)
    assert tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False) == text
    plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert processor.apply_chat_template(plain, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
    )


def test_two_images_expand_to_their_patch_tokens(processor):
    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)

    inputs = processor(text=[text], images=pictures(), return_tensors="pt")

    grid = inputs["image_grid_thw"]
    # Qwen fits each image to its 28-pixel grid: 200x100 -> 196x112, 60x300 -> 56x308 (14-pixel patches).
    assert grid.tolist() == [[1, 112 // 14, 196 // 14], [1, 308 // 14, 56 // 14]]
    patches = int(grid.prod(dim=1).sum())
    assert inputs["pixel_values"].shape == (patches, 3 * 2 * 14 * 14)
    image_pad = processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    assert int((inputs["input_ids"][0] == image_pad).sum()) == patches // 4  # 2x2 patches per token


def test_verl_loads_the_folder_and_a_random_model_of_its_config_runs(tiny_processor_dir):
    from verl.utils.tokenizer import hf_processor

    processor = hf_processor(str(tiny_processor_dir))
    assert type(processor).__name__ == "Qwen2_5_VLProcessor" and hasattr(processor, "get_rope_index")

    config = AutoConfig.from_pretrained(tiny_processor_dir, local_files_only=True)
    tokenizer = processor.tokenizer
    assert config.text_config.vocab_size == len(tokenizer)
    assert config.image_token_id == tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    assert config.vision_start_token_id == tokenizer.convert_tokens_to_ids(VISION_START)

    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=pictures(), return_tensors="pt")
    positions, _ = processor.get_rope_index(
        input_ids=inputs["input_ids"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs["image_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    assert positions.shape == (3, 1, inputs["input_ids"].shape[1])  # time, height, width

    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from training.backends.tiny_vlm import tiny_qwen_vl_model_save

    return tiny_qwen_vl_model_save(tmp_path_factory.mktemp("tiny-qwen-vl-model"))


def test_the_model_folder_loads_offline_with_its_processor_and_generates(tiny_model_dir):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    processor = AutoProcessor.from_pretrained(tiny_model_dir, local_files_only=True)
    tokenizer = processor.tokenizer

    assert model.config.text_config.vocab_size == len(tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids(IM_END)
    assert model.generation_config.pad_token_id == tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids(IMAGE_PAD)

    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text, text], images=pictures() * 2, padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert (
        output.shape[0] == 2
        and inputs["input_ids"].shape[1] < output.shape[1] <= inputs["input_ids"].shape[1] + 4
    )
    assert all(
        0 <= token < len(tokenizer) for token in output[:, inputs["input_ids"].shape[1] :].flatten().tolist()
    )


def test_the_seed_decides_the_weights(tmp_path, tiny_model_dir):
    from training.backends.tiny_vlm import tiny_qwen_vl_model_save

    def weights(folder):
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, local_files_only=True).state_dict()

    same = weights(tiny_qwen_vl_model_save(tmp_path / "same", seed=0))
    other = weights(tiny_qwen_vl_model_save(tmp_path / "other", seed=1))
    reference = weights(tiny_model_dir)

    assert all(torch.equal(same[name], reference[name]) for name in reference)
    assert not all(torch.equal(other[name], reference[name]) for name in reference)


def test_saving_the_model_leaves_the_global_random_state_alone(tmp_path):
    from training.backends.tiny_vlm import tiny_qwen_vl_model_save

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_qwen_vl_model_save(tmp_path / "model", seed=7)
    assert torch.equal(torch.rand(3), expected)
