"""verl's ``RLHFDataset`` with every training batch balanced between "yes" and "no" answers, as in the paper.

verl 0.9.1 has no option for balanced batches and no hook for the training sampler (``create_rl_sampler``
knows only a random and a sequential sampler), but it loads the dataset class from a file:
``data.custom_cls.path`` and ``data.custom_cls.name`` (``get_dataset_class`` in
``verl/utils/dataset/rl_dataset.py``). This class reorders the training rows once, after the parent has read
the files and dropped the overlong prompts, so that every consecutive block of ``data.train_batch_size`` rows
holds as many "yes" as "no" answers (``reward_model.ground_truth``). Run with ``data.shuffle=False``: verl's
sequential sampler then hands the rows out in this order, and its trainer cuts its batches at the same
boundaries (it takes ``train_batch_size`` prompts per step from a dataloader with ``drop_last=True``).

Config keys, under ``data``:

- ``balance``: "oversample" (default), "undersample" or "off". Not one of verl's keys: written
  ``++data.balance=...``, as verl's config is in struct mode.

  - "oversample": every row of the larger class once per epoch; the smaller class is repeated to match, each
    pass over it in a new random order;
  - "undersample": every row of the smaller class once per epoch, with a random subset of the larger class;
  - "off": the parent's behaviour (the rows in file order).

  With either resampling policy, the last batch is topped up with rows drawn again (a partial pass), so that
  the length is a whole number of batches and no row of the class that sets the length is left out.
- ``seed``: verl's own ``data.seed`` (null in its yaml, where only the random sampler reads it): the seed of
  the order; null means ``DEFAULT_SEED``. The order depends on nothing else, so a run that resumes from a
  checkpoint rebuilds the same order and verl's dataloader state points at the same rows.

Decisions:

- An odd ``train_batch_size`` is refused (``ValueError``): a batch can't hold as many of each answer.
- The order is built once, so every epoch goes through the same order (the dataset is not told the epoch).
- Only the training split is reordered. verl 0.9.1 builds both splits with the same class and config
  (``create_rl_dataset`` takes ``is_train`` but does not pass it on), so the split is told by the files: a
  dataset whose files are ``data.train_files`` is the training split; any other one (``data.val_files``)
  keeps the file order. When the two are the same files the split can't be told, which is refused.

verl imports this file on its own, by path, in its trainer process and in its agent-loop workers (which only
use the parent's class methods): it must import nothing of the project and no Django, only verl, numpy and
the standard library.
"""

import importlib.util
import string
from collections import Counter
from pathlib import Path
from typing import Any

from verl.utils.dataset.rl_dataset import RLHFDataset


def _sibling_module(name: str):  # noqa: ANN202 a module
    """A module next to this file, loaded by path: verl loads this file by path too, in processes where the
    project's packages are not importable."""
    spec = importlib.util.spec_from_file_location(f"twin_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_balanced = _sibling_module("balanced_order")
balanced_order = _balanced.balanced_order
YES, NO = _balanced.YES, _balanced.NO

BALANCE_POLICIES = ("oversample", "undersample", "off")
DEFAULT_BALANCE = "oversample"
# The seed when data.seed is null: a fixed one, never a random one, so that a resumed run gets the same order.
DEFAULT_SEED = 0


class BalancedRLHFDataset(RLHFDataset):
    """``RLHFDataset`` whose training rows come in batches with as many "yes" as "no" answers.

    Constructed by verl as its own class is (``create_rl_dataset`` in ``verl/trainer/ppo/utils.py``):
    ``cls(data_files=, tokenizer=, processor=, config=<data config>, max_samples=)``.
    """

    def _read_files_and_tokenize(self) -> None:
        """The parent's reading and filtering, then the balanced order.

        Overridden here rather than in ``__init__`` so that the order is rebuilt whenever the parent re-reads
        the files (``resume_dataset_state``, which verl 0.9.1's V1 trainer never calls). A run resumed from a
        checkpoint builds a new dataset, with the same seed and so the same order, and verl's restored
        dataloader state then points at the rows it had reached.
        """
        super()._read_files_and_tokenize()
        policy = self.config.get("balance", DEFAULT_BALANCE)
        if policy not in BALANCE_POLICIES:
            raise ValueError(f"data.balance must be one of {', '.join(BALANCE_POLICIES)}, got {policy!r}")
        name = type(self).__name__
        if policy == "off":
            print(f"{name}: data.balance=off, {len(self.dataframe)} rows kept in file order")
            return
        if not is_training_split(self.original_data_files, self.config):
            print(
                f"{name}: not the training files (data.train_files), {len(self.dataframe)} rows kept in order"
            )
            return

        labels = [_label_of(reward_model) for reward_model in self.dataframe["reward_model"]]
        batch_size = int(self.config.train_batch_size)
        seed = self.config.get("seed")
        seed = DEFAULT_SEED if seed is None else int(seed)
        order = balanced_order(labels, batch_size=batch_size, policy=policy, seed=seed)
        self.dataframe = self.dataframe.select(order)

        before = Counter(labels)
        after = Counter(labels[i] for i in order)
        print(
            f"{name}: {policy}, seed {seed}, batch {batch_size}: {len(labels)} rows ({before[YES]} yes, "
            f"{before[NO]} no) -> {len(order)} rows in {len(order) // batch_size} batches "
            f"({after[YES]} yes, {after[NO]} no)"
        )


def is_training_split(data_files: Any, config: Any) -> bool:
    """Whether the dataset being built reads ``data.train_files``, told apart from ``data.val_files``.

    data_files: what verl passed the dataset (a path or a list of them; ``RLHFDataset`` keeps them as
    ``original_data_files``, before ``copy_to_local`` rewrites ``data_files``). verl passes
    ``config.data.train_files`` and ``config.data.val_files`` themselves, so they compare equal as given.
    """
    files = _paths(data_files)
    is_train = files == _paths(config.get("train_files"))
    if is_train and files == _paths(config.get("val_files")):
        raise ValueError(
            f"data.train_files and data.val_files are the same files ({files}): the balanced dataset can't "
            f"tell the training split, to reorder, from the validation one, to keep as it is; use "
            f"different files or data.balance=off"
        )
    return is_train


def _paths(files: Any) -> list[str]:
    """A path or a list of paths (a list, or OmegaConf's ListConfig) as a list of strings."""
    if files is None:
        return []
    if isinstance(files, str):
        return [files]
    return [str(path) for path in files]


def _label_of(reward_model: Any) -> str:
    """A row's answer, normalized as the reward normalizes labels (case, whitespace and punctuation around)."""
    ground_truth = (reward_model or {}).get("ground_truth")
    if ground_truth is None:
        return ""
    return str(ground_truth).lower().strip(string.whitespace + string.punctuation)
