"""Cached building blocks shared by every notebook: tokens, clean base model, victims, evaluations.

Each function asks the artifact cache first (:mod:`paperlib.cache`), so the four paper notebooks
reuse each other's clean model and victims, and an interrupted training resumes from its last
checkpoint in the artifact's ``.partial`` directory.

The clean base model stands in for the papers' pre-trained CLIP (OpenAI's RN50 weights): like
those weights it is one fixed artifact (``base_seed``), and the seeds of an experiment vary what
is built on top of it (poisoning, defences).

The blocks live in one module each, all re-exported here (``pipeline.evaluate`` etc.):
:mod:`~paperlib.pipeline.core` (devices, :class:`ModelArtifact`, tokens, the cached training
step), :mod:`~paperlib.pipeline.bases` (the clean base), :mod:`~paperlib.pipeline.poisoning`
(victims), :mod:`~paperlib.pipeline.evaluation` (metrics) and :mod:`~paperlib.pipeline.defence`
(defended and retrained models).  A function calls its neighbours in its own module, so a test
that replaces one of them patches that module (``paperlib.pipeline.defence.defence_context``).
"""
from __future__ import annotations

# what this module imported before it was split, read by callers as ``pipeline.<name>``
from paperlib.attacks import attack_key  # noqa: F401
from paperlib.cache import ArtifactCache, write_json_atomic  # noqa: F401
from paperlib.data.splits import DataConfig, RenderedSplit, get_split, split_params  # noqa: F401
from paperlib.pipeline.bases import (clean_pretrain_key, external_model, file_sha256, is_shipped_record,
                                     pretrain_clean, shipped_base, shipped_base_key, shipped_base_name)
from paperlib.pipeline.core import ModelArtifact, _train_artifact, device_name, resolve_device, split_tokens
from paperlib.pipeline.defence import (defence_context, defence_key, defence_scene_ids, defend, encode_token_rows,
                                       pair_embeddings, retrain_key, retrain_on)
from paperlib.pipeline.evaluation import (TEMPLATE_SETS, classifier_for, evaluate, linear_probe_eval, linear_probe_key,
                                         templates_for)
from paperlib.pipeline.poisoning import (PRETRAIN_DEFENCES, PoisonedSet, clean_encoder, finetune_scene_ids,
                                         poison_finetune, poison_finetune_key, poison_pretrain, poison_pretrain_key,
                                         poisoned_pairs,
                                         prepared_attack, victim_train_config)
from paperlib.train.loop import TrainConfig  # noqa: F401

__all__ = [
    "resolve_device", "device_name", "ModelArtifact", "split_tokens", "_train_artifact",
    "external_model", "file_sha256", "is_shipped_record", "shipped_base", "shipped_base_key", "shipped_base_name", "clean_pretrain_key", "pretrain_clean",
    "PRETRAIN_DEFENCES", "poison_pretrain", "poison_pretrain_key", "PoisonedSet", "finetune_scene_ids", "poisoned_pairs",
    "prepared_attack", "clean_encoder", "victim_train_config", "poison_finetune_key", "poison_finetune",
    "TEMPLATE_SETS", "templates_for", "classifier_for", "evaluate", "linear_probe_eval", "linear_probe_key",
    "defence_scene_ids", "defence_context", "defence_key", "defend", "encode_token_rows", "pair_embeddings",
    "retrain_key", "retrain_on",
]
