"""DreamBooth for synthetic hard negatives (TWIN paper, appendix B.4).

Per instance: fine-tune Stable Diffusion on 3 to 5 of its images, with a new placeholder token (e.g.
``<twin-42>``) whose text embedding starts as the embedding of the instance's category word (the paper's
"initializer token"), then generate with the paper's five prompts. Annotators later drop generations that
don't look like the instance or that are indistinguishable from it; the rest become hard negatives.

The components (UNet, VAE, text encoder, tokenizer, scheduler) are loaded once per worker and shared by all
the instances it handles. Each instance runs inside :func:`dreambooth_instance`, which changes them only
for the duration of the run and puts them back exactly on the way out, exception or not:

- the tokenizer is never touched: the instance works on a copy that knows the placeholder token;
- the text encoder's token embedding is swapped for a wrapper that adds one trainable row (the
  placeholder) on top of the frozen table, and swapped back afterwards;
- LoRA: the adapter is injected into the UNet's attention projections and unloaded afterwards (peft's
  layers are replaced by the original ``Linear`` modules, whose weights were frozen throughout);
- full fine-tuning: the UNet's state dict is copied before training and loaded back afterwards.

No prior-preservation loss: DreamBooth adds it to keep the class prior intact while the identifier learns
the subject, so that the model can still draw *other* members of the class. Here drift is the point -- we
want images that keep the instance's gist but get its details wrong -- and the model is thrown away after
each instance, so a damaged prior costs nothing. It would also need 100-200 class images generated per
instance, which would dominate the run time.

Nothing here imports Django, and torch, diffusers, peft and transformers are imported inside the functions
that use them, so importing this module is cheap. Components are not thread safe: one instance at a time per
set of components.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch
    from PIL import Image

PAPER_PROMPTS = ("an image of {c}", "similar to {c}", "a picture of {c}", "show me a {c}", "here is a {c}")
LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
COMPONENT_FOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DEFAULT_LEARNING_RATES = {"lora": 1e-4, "full": 5e-6}

OnStep = Callable[[int, int], None]


class DreamBoothWeightsUnavailable(RuntimeError):
    """The diffusion model could not be loaded from the local folder or the local Hugging Face cache."""


@dataclass(frozen=True)
class DreamBoothConfig:
    """Settings of one instance's fine-tuning and generation.

    Defaults follow common DreamBooth practice (the diffusers ``train_dreambooth`` and
    ``train_dreambooth_lora`` examples and the DreamBooth paper): resolution 512 (SD 1.5's native size),
    ~400 steps for a handful of subject images, AdamW with weight decay 1e-2 and gradient clipping at 1.0,
    learning rate 1e-4 for LoRA (rank 4, alpha = rank) and 5e-6 for full UNet fine-tuning, batch 1. The
    placeholder token's embedding learns faster (5e-4, textual inversion's order of magnitude) because it is
    a single row that starts as the category and has to move towards the instance. Generation: classifier-
    free guidance 7.5 and 30 steps of DPM-Solver++ (the examples' validation scheduler).

    ``learning_rate=None`` picks the method's default. ``train_prompt`` may use ``{token}`` and
    ``{category}``. ``prompt_subject`` is what replaces ``{c}`` in the generation prompts:

    - ``"token"`` (default): the learned placeholder token, e.g. "here is a <twin-42>". It started as the
      category's embedding and was trained on the instance, so it is the category word pulled towards the
      instance -- the reading of "initializer token = category" in the paper.
    - ``"category"``: the plain category word, e.g. "here is a vase", the paper's literal wording; the
      instance then only reaches the images through the fine-tuned UNet.

    ``mixed_precision``: ``"auto"`` runs the forward passes under bf16 autocast on CUDA and in float32 on the
    CPU; ``"bf16"`` forces autocast, ``"no"`` disables it. Trained weights (LoRA, the token row, the UNet
    for full fine-tuning) are kept in float32 during training, whatever the components' dtype.

    ``seed`` fixes everything random: LoRA initialisation, augmentation, noise, timesteps, and the
    generation seeds (``seed + k`` for the k-th generated image).
    """

    method: Literal["lora", "full"] = "lora"
    resolution: int = 512
    train_steps: int = 400
    learning_rate: float | None = None
    lora_rank: int = 4
    batch_size: int = 1
    token_learning_rate: float = 5e-4
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    guidance_scale: float = 7.5
    inference_steps: int = 30
    images_per_prompt: int = 1
    train_prompt: str = "a photo of {token}"
    prompt_subject: Literal["token", "category"] = "token"
    seed: int = 0
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"

    def __post_init__(self) -> None:
        if self.method not in DEFAULT_LEARNING_RATES:
            raise ValueError(f"method must be 'lora' or 'full', not {self.method!r}")
        if self.prompt_subject not in ("token", "category"):
            raise ValueError(f"prompt_subject must be 'token' or 'category', not {self.prompt_subject!r}")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ValueError(f"mixed_precision must be 'auto', 'no' or 'bf16', not {self.mixed_precision!r}")
        for name in ("resolution", "lora_rank", "batch_size", "inference_steps", "images_per_prompt"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.train_steps < 0:
            raise ValueError("train_steps must not be negative")

    @property
    def effective_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.method]


@dataclass
class DreamBoothComponents:
    """The Stable Diffusion parts, loaded once and reused (and restored) across instances."""

    unet: Any = field(repr=False)
    vae: Any = field(repr=False)
    text_encoder: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    scheduler: Any = field(repr=False)
    device: torch.device
    dtype: torch.dtype
    source: str


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    prompt: str
    seed: int


@dataclass
class TrainingReport:
    """What one instance's fine-tuning did: the loss per step and the placeholder row before and after."""

    losses: list[float] = field(default_factory=list)
    token_id: int = -1
    token_embedding_initial: torch.Tensor | None = None
    token_embedding_final: torch.Tensor | None = None


# --- choosing the grounding images ---------------------------------------------------------------------


def instance_images_sample(image_count: int, *, rng: random.Random) -> list[int]:
    """Indices (sorted) of the instance images to fine-tune on.

    The paper samples 3 to 5 images per instance: the count is drawn uniformly from {3, 4, 5} and capped by
    what the instance has. Instances with fewer than 3 images use all of them (DreamBooth still works with
    one or two, just with less to go on; dropping them would bias the synthetic negatives towards
    well-photographed products). Pass a seeded ``random.Random`` for reproducible choices.
    """
    if image_count < 0:
        raise ValueError("image_count must not be negative")
    count = min(rng.randint(3, 5), image_count)
    return sorted(rng.sample(range(image_count), count))


# --- loading ---------------------------------------------------------------------------------------------


def _device_and_dtype(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    import torch

    resolved = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    if dtype == "auto":
        return resolved, torch.bfloat16 if resolved.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(dtypes)}, not {dtype!r}")
    return resolved, dtypes[dtype]


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or model.count("/") > 1 or "\\" in model


def dreambooth_components_load(
    model: str, *, device: str = "auto", dtype: str = "auto"
) -> DreamBoothComponents:
    """Loads a Stable Diffusion model in diffusers layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/).

    ``model`` is a local folder, or a hub id (e.g. ``stable-diffusion-v1-5/stable-diffusion-v1-5``) that is
    already in the local Hugging Face cache: nothing is ever downloaded. ``dtype="auto"`` is bfloat16 on CUDA
    and float32 on the CPU. Raises :class:`DreamBoothWeightsUnavailable` naming the model, where it looked
    and why it failed.
    """
    resolved_device, resolved_dtype = _device_and_dtype(device, dtype)
    local = Path(model).expanduser()
    if local.is_dir():
        folder, place = local, f"folder {local}"
    elif _looks_like_path(model):
        raise DreamBoothWeightsUnavailable(f"DreamBooth model {model!r}: no such folder {local}")
    else:
        from huggingface_hub import constants, snapshot_download

        place = f"the local Hugging Face cache {constants.HF_HUB_CACHE} (downloads are disabled)"
        try:
            folder = Path(snapshot_download(model, local_files_only=True))
        except Exception as exc:
            raise DreamBoothWeightsUnavailable(
                f"DreamBooth model {model!r} is not in {place}: {type(exc).__name__}: {exc}"
            ) from exc

    missing = [name for name in COMPONENT_FOLDERS if not (folder / name).is_dir()]
    if missing:
        raise DreamBoothWeightsUnavailable(
            f"DreamBooth model {model!r} in {place} lacks the diffusers component folders {missing}"
        )
    try:
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        common = {"local_files_only": True}
        unet = UNet2DConditionModel.from_pretrained(
            folder, subfolder="unet", torch_dtype=resolved_dtype, **common
        )
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=resolved_dtype, **common)
        text_encoder = CLIPTextModel.from_pretrained(
            folder, subfolder="text_encoder", dtype=resolved_dtype, **common
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer", **common)
        scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler", **common)
    except Exception as exc:
        raise DreamBoothWeightsUnavailable(
            f"DreamBooth model {model!r} could not be loaded from {place}: {type(exc).__name__}: {exc}"
        ) from exc
    return _components_ready(
        unet, vae, text_encoder, tokenizer, scheduler, resolved_device, resolved_dtype, source=model
    )


def dreambooth_components_make(
    *, unet, vae, text_encoder, tokenizer, scheduler, device: str = "auto", dtype: str = "auto", source: str
) -> DreamBoothComponents:
    """Wraps already built modules (e.g. random-weight ones made from configs) as base components."""
    resolved_device, resolved_dtype = _device_and_dtype(device, dtype)
    return _components_ready(
        unet, vae, text_encoder, tokenizer, scheduler, resolved_device, resolved_dtype, source=source
    )


def _components_ready(
    unet, vae, text_encoder, tokenizer, scheduler, device, dtype, *, source: str
) -> DreamBoothComponents:
    # The base state every instance starts from and returns to: frozen, in eval mode, on the device.
    for module in (unet, vae, text_encoder):
        module.to(device)
        _cast(module, dtype)
        module.requires_grad_(False)
        module.eval()
    return DreamBoothComponents(unet, vae, text_encoder, tokenizer, scheduler, device, dtype, source)


def _cast(module, dtype) -> None:
    import torch

    # torch's own `to`: diffusers' override warns about float32-only modules on every dtype cast, even when
    # a model has none (and SD's UNet and VAE have none).
    torch.nn.Module.to(module, dtype=dtype)


TINY_CORPUS_WORDS = (
    "a an the of to me is here show similar picture image photo object product "
    "vase headphones speaker mug cup shoe sneaker boot chair lamp bottle backpack bag watch keyboard mouse "
    "camera toy guitar bowl plant teapot clock phone remote controller glasses hat jacket wallet knife"
)


def _tiny_tokenizer():
    """A BPE tokenizer trained on the spot on prompts and category words, shaped like CLIP's."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bos, eos, unk = "<|startoftext|>", "<|endoftext|>", "<|unk|>"
    tokenizer = Tokenizer(models.BPE(unk_token=unk, end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[bos, eos, unk],
        # Every lowercase word stays encodable (as pieces), so any category has an initializer embedding.
        initial_alphabet=list("abcdefghijklmnopqrstuvwxyz0123456789"),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    corpus = [prompt.format(c=word) for prompt in PAPER_PROMPTS for word in TINY_CORPUS_WORDS.split()]
    tokenizer.train_from_iterator([*corpus, TINY_CORPUS_WORDS], trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, tokenizer.token_to_id(bos)), (eos, tokenizer.token_to_id(eos))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        pad_token=eos,  # as in Stable Diffusion's CLIP tokenizer
        model_max_length=77,
    )


def dreambooth_components_tiny(
    *, resolution: int = 32, seed: int = 0, device: str = "cpu"
) -> DreamBoothComponents:
    """Random-weight tiny components built from configs (tests and CPU benchmarks; no weights needed).

    The VAE halves the resolution (two blocks), the UNet has cross-attention in both blocks so that LoRA has
    attention projections to adapt, and the text encoder is a 2-layer CLIP with a tokenizer trained on the spot.
    """
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = _tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=resolution // 2,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=32,
        )
        vae = AutoencoderKL(
            sample_size=resolution,
            in_channels=3,
            out_channels=3,
            block_out_channels=(32, 64),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=32,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=37,
                vocab_size=len(tokenizer),
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    # Stable Diffusion 1.5's noise schedule.
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        steps_offset=1,
    )
    resolved_device, dtype = _device_and_dtype(device, "float32")
    return _components_ready(
        unet, vae, text_encoder, tokenizer, scheduler, resolved_device, dtype, source="tiny"
    )


# --- one instance ---------------------------------------------------------------------------------------


def _placeholder_embedding(base, token_id: int, initial):
    """The frozen token table plus one trainable float32 row for the placeholder token.

    The placeholder's id is usually one past the table's end (the table is not resized: that would copy it
    per instance); ids are clamped for the lookup and the placeholder's positions replaced afterwards.
    """
    import torch

    class PlaceholderEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.token_id = token_id
            # A child registered after `base`, not a parameter of this module: transformers takes a model's
            # dtype from its first parameter, which must stay the table's (bf16 on CUDA), not this row's.
            self.placeholder = torch.nn.Embedding(1, base.embedding_dim, device=base.weight.device)
            with torch.no_grad():
                self.placeholder.weight.copy_(initial.float())

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            embeds = self.base(input_ids.clamp(max=self.base.num_embeddings - 1))
            is_placeholder = (input_ids == self.token_id).unsqueeze(-1)
            return torch.where(is_placeholder, self.placeholder.weight[0].to(embeds.dtype), embeds)

    return PlaceholderEmbedding()


def _pixels(image: Image.Image, resolution: int):
    """Resize (shorter side to ``resolution``) and center crop; float32 CHW in [-1, 1]."""
    import numpy as np
    from PIL import Image as PILImage

    image = image.convert("RGB")
    scale = resolution / min(image.size)
    width, height = (max(resolution, round(side * scale)) for side in image.size)
    image = image.resize((width, height), PILImage.Resampling.BICUBIC)
    left, top = (width - resolution) // 2, (height - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    return (np.asarray(image, dtype=np.float32) / 127.5 - 1.0).transpose(2, 0, 1)


class DreamBoothInstance:
    """One instance's run on shared components; made by :func:`dreambooth_instance`, valid inside it only."""

    def __init__(
        self, components: DreamBoothComponents, *, category: str, token: str, config: DreamBoothConfig
    ):
        self.components = components
        self.category = category
        self.token = token
        self.config = config
        self.tokenizer: Any = None
        self.token_id = -1
        self.embedding: Any = None

    # Progress is reported in units: one per training step, one per denoising step of each generated batch.
    def generation_units(self, prompt_count: int) -> int:
        return prompt_count * self.config.inference_steps

    def _autocast(self):
        import torch

        device = self.components.device
        enabled = self.config.mixed_precision == "bf16" or (
            self.config.mixed_precision == "auto" and device.type == "cuda"
        )
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)

    def _input_ids(self, prompts: Sequence[str]):
        return self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.components.device)

    def train(self, images: Sequence[Image.Image], *, on_step: OnStep | None = None) -> TrainingReport:
        """Fine-tunes on ``images`` for ``config.train_steps`` steps; ``on_step(done, train_steps)`` after each."""
        import numpy as np
        import torch
        import torch.nn.functional as F
        from diffusers import DDPMScheduler

        if not images:
            raise ValueError("DreamBooth needs at least one image of the instance")
        parts, config = self.components, self.config
        device = parts.device
        noise_scheduler = DDPMScheduler.from_config(parts.scheduler.config)
        generator = torch.Generator("cpu").manual_seed(config.seed)
        report = TrainingReport(
            token_id=self.token_id,
            token_embedding_initial=self.embedding.placeholder.weight[0].detach().cpu().clone(),
        )

        # Augmented views (each image and its mirror image) are encoded once; each step samples from their
        # cached latent distributions, which is what encoding them again every step would do, minus the VAE.
        pixels = [_pixels(image, config.resolution) for image in images]
        views = torch.from_numpy(np.stack(pixels + [p[:, :, ::-1] for p in pixels]))
        means, stds = [], []
        with torch.no_grad(), self._autocast():
            for chunk in views.split(4):
                dist = parts.vae.encode(chunk.to(device, parts.dtype)).latent_dist
                means.append(dist.mean.float())
                stds.append(dist.std.float())
        mean, std = torch.cat(means), torch.cat(stds)
        scaling = parts.vae.config.scaling_factor
        shift = getattr(parts.vae.config, "shift_factor", None) or 0.0

        unet_params = [param for param in parts.unet.parameters() if param.requires_grad]
        token_params = list(self.embedding.placeholder.parameters())
        optimizer = torch.optim.AdamW(
            [
                {"params": unet_params, "lr": config.effective_learning_rate},
                {"params": token_params, "lr": config.token_learning_rate, "weight_decay": 0.0},
            ],
            weight_decay=config.adam_weight_decay,
        )
        prompt = config.train_prompt.format(token=self.token, category=self.category)
        input_ids = self._input_ids([prompt])
        unet_dtype = next(iter(unet_params)).dtype if config.method == "full" else parts.dtype
        parts.unet.train()
        for step in range(config.train_steps):
            views_index = torch.randint(0, len(mean), (config.batch_size,), generator=generator)
            sample_noise = torch.randn(mean[views_index].shape, generator=generator)
            latents = (mean[views_index] + std[views_index] * sample_noise.to(device) - shift) * scaling
            noise = torch.randn(latents.shape, generator=generator).to(device)
            timesteps = torch.randint(
                0, noise_scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator
            ).to(device)
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            if noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(latents, noise, timesteps)
            else:
                target = noise
            with self._autocast():
                hidden = parts.text_encoder(input_ids)[0].expand(config.batch_size, -1, -1)
                prediction = parts.unet(noisy.to(unet_dtype), timesteps, hidden.to(unet_dtype)).sample
            loss = F.mse_loss(prediction.float(), target.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet_params + token_params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            report.losses.append(loss.item())
            if on_step is not None:
                on_step(step + 1, config.train_steps)
        parts.unet.eval()
        report.token_embedding_final = self.embedding.placeholder.weight[0].detach().cpu().clone()
        return report

    def generate(
        self, prompts: Sequence[str] = PAPER_PROMPTS, *, on_step: OnStep | None = None
    ) -> list[GeneratedImage]:
        """``images_per_prompt`` images per prompt (``{c}`` = the subject), each from its own seeded generator."""
        import torch
        from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

        parts, config = self.components, self.config
        # After full fine-tuning the UNet is float32; generate in the components' dtype like the base model.
        _cast(parts.unet, parts.dtype)
        subject = self.token if config.prompt_subject == "token" else self.category
        pipeline = StableDiffusionPipeline(
            vae=parts.vae,
            text_encoder=parts.text_encoder,
            tokenizer=self.tokenizer,
            unet=parts.unet,
            scheduler=DPMSolverMultistepScheduler.from_config(parts.scheduler.config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipeline.set_progress_bar_config(disable=True)
        total = self.generation_units(len(prompts))
        done = 0

        def step_end(_pipeline, _step, _timestep, tensors):
            nonlocal done
            done += 1
            if on_step is not None:
                on_step(done, total)
            return tensors

        results: list[GeneratedImage] = []
        for index, template in enumerate(prompts):
            prompt = template.format(c=subject)
            seeds = [
                config.seed + index * config.images_per_prompt + k for k in range(config.images_per_prompt)
            ]
            # CPU generators: the starting noise of a seed is the same on every device.
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
            with torch.no_grad(), self._autocast():
                output = pipeline(
                    prompt,
                    height=config.resolution,
                    width=config.resolution,
                    num_inference_steps=config.inference_steps,
                    guidance_scale=config.guidance_scale,
                    num_images_per_prompt=config.images_per_prompt,
                    generator=generators,
                    callback_on_step_end=step_end,
                )
            results.extend(
                GeneratedImage(image, prompt, seed) for image, seed in zip(output.images, seeds, strict=True)
            )
        return results


@contextlib.contextmanager
def dreambooth_instance(
    components: DreamBoothComponents, *, category: str, token: str, config: DreamBoothConfig
) -> Iterator[DreamBoothInstance]:
    """Prepares the shared components for one instance and restores them on exit (also on exceptions).

    Inside: a tokenizer copy that knows ``token``, the placeholder row initialised from ``category`` (the
    mean embedding of its tokens when the word is split), and a LoRA adapter (or a trainable UNet).
    """
    import torch

    parts = components
    if getattr(parts.unet, "peft_config", None):
        raise RuntimeError("the UNet already carries a LoRA adapter; components were not restored")
    instance = DreamBoothInstance(parts, category=category, token=token, config=config)

    if token in parts.tokenizer.get_vocab():
        raise ValueError(f"placeholder token {token!r} is already in the tokenizer's vocabulary")
    tokenizer = copy.deepcopy(parts.tokenizer)
    if tokenizer.add_tokens([token]) != 1:
        raise ValueError(f"placeholder token {token!r} is already in the tokenizer's vocabulary")
    token_id = tokenizer.convert_tokens_to_ids(token)
    if tokenizer(token, add_special_tokens=False).input_ids != [token_id]:
        raise ValueError(f"placeholder token {token!r} is not kept whole by the tokenizer (use lowercase)")
    category_ids = tokenizer(category, add_special_tokens=False).input_ids
    if not category_ids:
        raise ValueError(f"category {category!r} has no tokens to initialise the placeholder from")

    base_embedding = parts.text_encoder.get_input_embeddings()
    with torch.no_grad():
        initial = base_embedding.weight[torch.tensor(category_ids, device=parts.device)].float().mean(0)
    instance.tokenizer, instance.token_id = tokenizer, token_id
    instance.embedding = _placeholder_embedding(base_embedding, token_id, initial)

    saved_unet_state = None
    try:
        parts.text_encoder.set_input_embeddings(instance.embedding)
        if config.method == "lora":
            from peft import LoraConfig

            lora = LoraConfig(
                r=config.lora_rank,
                lora_alpha=config.lora_rank,
                init_lora_weights="gaussian",
                target_modules=list(LORA_TARGET_MODULES),
            )
            # The adapter draws its initial weights from the global RNG: seed it without disturbing it.
            cuda = [parts.device.index or 0] if parts.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(config.seed)
                parts.unet.add_adapter(lora)
            for param in parts.unet.parameters():
                if param.requires_grad:
                    param.data = param.data.float()
        else:
            saved_unet_state = {
                name: value.detach().to("cpu", copy=True) for name, value in parts.unet.state_dict().items()
            }
            # Weights are trained in float32 (AdamW on bf16 weights loses small updates); bf16 -> fp32 is exact.
            _cast(parts.unet, torch.float32)
            parts.unet.requires_grad_(True)
        yield instance
    finally:
        parts.text_encoder.set_input_embeddings(base_embedding)
        if getattr(parts.unet, "peft_config", None):
            parts.unet.unload_lora()
        if saved_unet_state is not None:
            _cast(parts.unet, parts.dtype)
            parts.unet.load_state_dict(saved_unet_state)
        parts.unet.requires_grad_(False)
        parts.unet.eval()


def dreambooth_generate(
    components: DreamBoothComponents,
    *,
    images: Sequence[Image.Image],
    category: str,
    token: str,
    config: DreamBoothConfig,
    prompts: Sequence[str] = PAPER_PROMPTS,
    on_step: OnStep | None = None,
) -> list[GeneratedImage]:
    """Fine-tunes on an instance's images, then generates ``len(prompts) * images_per_prompt`` images.

    ``on_step(done, total)`` counts training steps then denoising steps; raise inside it to stop (the
    components are restored either way). ``token`` must be new to the tokenizer, e.g. ``<twin-{instance id}>``.
    """
    with dreambooth_instance(components, category=category, token=token, config=config) as instance:
        total = config.train_steps + instance.generation_units(len(prompts))
        instance.train(images, on_step=None if on_step is None else lambda done, _: on_step(done, total))
        offset = config.train_steps
        return instance.generate(
            prompts, on_step=None if on_step is None else lambda done, _: on_step(offset + done, total)
        )
