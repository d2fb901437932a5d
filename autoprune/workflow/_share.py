"""Weight sharing of a front member (Deep Compression's second step, after pruning): its layers' weights
shared among a few values, the shared values fine-tuned on the pipeline's training split (distilled
from the member itself), checked on the test split, written as the packed deployable file."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__, data, engine
from .._vocab import DEPLOYABLE_FILES
from ..config import LoadedPipeline
from ..errors import ModelError
from ._dense import build_dense
from ._locations import cache_dir

__all__ = ["SHARED_FILE", "Shared", "share_member"]

SHARED_FILE = DEPLOYABLE_FILES["shared"]
SHARE_LR = 0.005  # the shared values only move a little: Deep Compression retrains them at a low rate


@dataclass(frozen=True)
class Shared:
    path: Path
    clusters: int
    fp32_bytes: int  # the member's state dict as torch saves it
    shared_bytes: int  # the packed file, read from disk
    fp32_accuracy: float  # on the test split
    accuracy: float
    agreement: float  # the share of the test split both predict the same class for


def share_member(loaded: LoadedPipeline, member: Path, target: Path, *, clusters: int = 16, epochs: int = 2) -> Shared:
    """Share the weights of the front member saved in ``member`` (``plan.json`` + ``state_dict.pt``, as
    ``autoprune export --format state-dict`` writes them) among ``clusters`` values per layer, fine-tune
    the shared values for ``epochs`` epochs, and write the deployable (raw inputs in, preprocessing
    inside) as ``target``.

    Raises:
        ModelError: The member does not fit the pipeline's model, or ``clusters`` is out of range.
    """
    config = loaded.config
    splits = data.load(config.data, seed=config.seed, base_dir=loaded.base_dir, cache=cache_dir(config))
    model = engine.load_pruned(member, lambda: build_dense(config, splits, base_dir=loaded.base_dir))
    reference = copy.deepcopy(model).eval()
    try:
        engine.share_weights(model, clusters)
    except ValueError as exc:
        raise ModelError(str(exc), key="clusters") from exc
    recipe = engine.FinetuneConfig(
        epochs=epochs, lr=SHARE_LR, distill_alpha=0.5, batch_size=splits.batch_size, seed=config.seed
    )
    engine.finetune(model, splits, recipe, teacher=reference)
    engine.unshare(model).eval()
    plan = engine.read_pruned_metadata(member)["plan"]
    metadata = {"clusters": clusters, "plan": plan, "autoprune_version": __version__, "pipeline": config.name}
    metadata["class_names"] = list(splits.class_names)
    size = engine.save_shared(engine.Preprocessed.for_splits(model, splits), target, metadata=metadata)
    shared, fp32 = engine.evaluate(model, splits.test), engine.evaluate(reference, splits.test)
    return Shared(
        target,
        clusters,
        engine.size_bytes(reference),
        size,
        fp32.accuracy,
        shared.accuracy,
        _agreement(reference, model, splits),
    )


def _agreement(first: torch.nn.Module, second: torch.nn.Module, splits: data.Splits) -> float:
    same = 0
    with torch.inference_mode():
        for inputs, _ in splits.test.batches(engine.INFERENCE_BATCH):
            same += int((first(inputs).argmax(1) == second(inputs).argmax(1)).sum())
    return same / max(1, len(splits.test))
