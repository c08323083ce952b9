"""A tiny Qwen2.5-VL processor, built on the spot: for tests and CPU runs on machines without model weights.

Qwen2.5-VL's real processor loads its tokenizer from the model hub, which the tests cannot reach. This module
builds a stand-in that follows Qwen2.5-VL wherever the code around it looks:

- the special tokens: the chat markers ``<|im_start|>``/``<|im_end|>``, the vision markers
  ``<|vision_start|>``/``<|vision_end|>``, the placeholders ``<|image_pad|>``/``<|video_pad|>`` that the
  processor expands to one token per merged image patch, and ``<|endoftext|>`` for padding;
- the text pipeline: NFC, Qwen2's pre-tokenization regex and byte-level BPE, so any text encodes (byte
  fallback) and ``"\\n"`` is one token, which verl's Qwen token builder checks;
- the chat template's format: a default system turn, ``{"type": "image"}`` parts rendered as
  ``<|vision_start|><|image_pad|><|vision_end|>``, and the ``<|im_start|>assistant`` generation prompt;
- the image processor: Qwen2-VL's, with its defaults (14-pixel patches, 2x2 merge, 2 temporal patches).

The vocabulary is not Qwen's: it is trained in well under a second on a short built-in text (the pair question
among it), so it is small and its ids differ. A model built for this processor (the tiny random Qwen2.5-VL of
the training tests) takes its size from ``len(processor.tokenizer)``.

The folder written by :func:`tiny_qwen_vl_processor_save` loads back offline with
``AutoProcessor.from_pretrained(folder)`` and ``AutoTokenizer.from_pretrained(folder)``, as verl loads a model's
processor. :func:`tiny_qwen_vl_model_save` adds a randomly initialised model of the toy configuration, so the
folder is a whole model that training code (the TRL runner) loads and trains on a CPU. transformers and
tokenizers are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2Tokenizer

# Qwen2.5-VL's special tokens that the processor, the chat template and verl refer to.
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)

# Qwen2.5-VL's conversation format, written as a Jinja chat template: a system turn first (Qwen's default
# one when the conversation brings none), then each turn between <|im_start|>role and <|im_end|>; a content
# given as a list of parts renders its images and videos as placeholders between the vision markers (the
# processor expands each placeholder to the image's patch tokens) and its text parts as they are.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

# What the tokenizer learns its merges from: the way the training prompts and answers are worded, so that
# they encode into words rather than bytes and the tiny model's prompts stay short.
_TRAINING_TEXT = (
    "The first image shows a blue ceramic mug with a white handle on a wooden table. "
    "The second image shows the same mug from the other side: the chip on the rim and the faded print match, "
    "so both images show one object instance. <answer>yes</answer>",
    "The first image shows a black leather wallet; the second one shows a brown wallet of the same model. "
    "The colour and the stitching differ, so they are two different objects. <answer>no</answer>",
    "Shape, colour, texture, markings and parts: compare them one by one, then answer yes or no.",
    "0 1 2 3 4 5 6 7 8 9 10 100 2024 3.5 left right top bottom front back small large red green white.",
)


def _training_texts() -> list[str]:
    from annotation.dataset.questions import PAIR_QUESTION

    return [*_TRAINING_TEXT, PAIR_QUESTION]


def tiny_qwen_vl_tokenizer_make(*, vocab_size: int = 2048) -> Qwen2Tokenizer:
    """A Qwen2 tokenizer whose byte-level BPE merges are trained on the built-in text, with Qwen's special tokens.

    ``vocab_size`` bounds the learned vocabulary; a short text stops the merges earlier.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # The same pipeline Qwen2Tokenizer builds around its BPE model, so the merges learned here fit it.
    trainee = Tokenizer(models.BPE())
    trainee.normalizer = normalizers.NFC()
    trainee.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainee.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    trainee.train_from_iterator(_training_texts(), trainer=trainer)

    # The trained model, serialized: its vocabulary and its merges in rank order (the Python API exposes no
    # merges), which Qwen2Tokenizer builds its own BPE model from.
    trained = json.loads(trainee.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=trained["vocab"],
        merges=[tuple(pair) for pair in trained["merges"]],
        unk_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        extra_special_tokens=[token for token in SPECIAL_TOKENS if token not in (IM_END, ENDOFTEXT)],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_qwen_vl_processor_make(
    *, vocab_size: int = 2048, min_pixels: int | None = None, max_pixels: int | None = None
) -> Qwen2_5_VLProcessor:
    """The tiny Qwen2.5-VL processor: the tiny tokenizer with Qwen2-VL's image and video processors.

    ``min_pixels``/``max_pixels`` bound the pixels of an image after the processor's resize (Qwen's defaults
    when None: 56*56 and 28*28*1280); a lower ``max_pixels`` means fewer image tokens, for faster CPU runs.
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    pixel_bounds = {}
    if min_pixels is not None:
        pixel_bounds["min_pixels"] = min_pixels
    if max_pixels is not None:
        pixel_bounds["max_pixels"] = max_pixels
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixel_bounds),
        tokenizer=tiny_qwen_vl_tokenizer_make(vocab_size=vocab_size),
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )


def tiny_qwen_vl_config_make(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL model configuration of toy size that fits the tiny tokenizer (vocabulary, special tokens).

    Two text layers of width 64 and two vision blocks of width 32: a random model of this shape runs on the
    CPU in milliseconds. The architecture is Qwen2.5-VL's own (3D rotary positions over
    time, height and width, windowed vision attention, 2x2 patch merging), so the code paths are the real
    ones. The rotary sections split the text heads' 16 dimensions as Qwen's [16, 24, 24] split its 128.
    """
    from transformers import Qwen2_5_VLConfig

    def token_id(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": token_id(ENDOFTEXT),
            "eos_token_id": token_id(IM_END),
            "pad_token_id": token_id(ENDOFTEXT),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        },
        image_token_id=token_id(IMAGE_PAD),
        video_token_id=token_id(VIDEO_PAD),
        vision_start_token_id=token_id(VISION_START),
        vision_end_token_id=token_id(VISION_END),
    )


def tiny_qwen_vl_processor_save(
    folder: Path, *, vocab_size: int = 2048, min_pixels: int | None = None, max_pixels: int | None = None
) -> Path:
    """Builds the tiny processor and saves it in folder, laid out like a model folder without the weights:
    the tokenizer, the image and video processors, the chat template and the model's ``config.json``.

    Returns the folder, which ``AutoProcessor.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load
    without a network. verl loads the processor of a model folder together with its configuration
    (``hf_processor`` gives the processor the model's ``get_rope_index``), hence ``config.json``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    processor = tiny_qwen_vl_processor_make(
        vocab_size=vocab_size, min_pixels=min_pixels, max_pixels=max_pixels
    )
    processor.save_pretrained(folder)
    tiny_qwen_vl_config_make(processor.tokenizer).save_pretrained(folder)
    return folder


def tiny_qwen_vl_model_save(folder: Path, *, seed: int = 0) -> Path:
    """Saves the tiny processor and a randomly initialised Qwen2.5-VL model of its configuration in folder.

    The model is ``tiny_qwen_vl_config_make``'s toy shape with weights drawn from ``seed`` (the same seed gives the
    same weights), so training code can be run end to end on a CPU without downloading a model. Its generation
    config ends a response at ``<|im_end|>`` and pads with ``<|endoftext|>``, as Qwen's own does, so ``generate``
    stops at the end of the assistant turn instead of running to ``max_new_tokens``.

    Returns the folder; ``Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)`` (or
    ``AutoModelForImageTextToText``) and ``AutoProcessor.from_pretrained(folder)`` load it offline.
    """
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2_5_VLForConditionalGeneration

    folder = tiny_qwen_vl_processor_save(folder)
    # The saved tokenizer, read back: the model is sized and wired to exactly what from_pretrained will load.
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    config = tiny_qwen_vl_config_make(tokenizer)
    # Seeded in a fork of the CPU random state, so the caller's (a test's) own random draws are left as they were.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
    )
    model.save_pretrained(folder)
    return folder


def tiny_qwen_vl_model_ensure(folder: Path) -> bool:
    """Saves the tiny model in folder unless a saved model is there already; True when it saved one (the demo
    commands reuse one model for their runs)."""
    folder = Path(folder)
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return False
    tiny_qwen_vl_model_save(folder)
    return True
