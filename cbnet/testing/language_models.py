"""A tiny BERT on disk for the grounding detectors (GLIP, Grounding DINO), and text prompts for their batches.

Why: these detectors build their text encoder with transformers' ``from_pretrained(name)``; no language model can
be downloaded here, and a test must not depend on one. :func:`tiny_bert` writes what ``save_pretrained`` writes
for a real BERT (``config.json``, ``model.safetensors``, ``vocab.txt`` and the tokenizer files) for a one-layer
model with a small vocabulary (the toy and COCO class words, punctuation, letters as word pieces), once per
machine and settings, and returns its directory: ``lang_model_name = tiny_bert()`` builds every grounding config.
Its hidden size is BERT-base's (768) because GLIP's early-fusion layers hard-code that width.
"""
import functools
import hashlib
import json
import os
import os.path as osp
import shutil
import string
import tempfile
from typing import Iterable, List, Optional, Sequence

from .toy_coco import CLASS_NAMES

#: settings of the tiny model (BERT-base's width, one narrow layer)
TINY_BERT = dict(
    hidden_size=768, num_hidden_layers=1, num_attention_heads=12, intermediate_size=64, max_position_embeddings=512)
_SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
_PUNCTUATION = list('.,?!;:()-\'"/&')


def tiny_bert_vocab() -> List[str]:
    """Special tokens, punctuation, the toy and COCO class words, then letters and ``##`` letters (so that any
    lowercase word tokenizes)."""
    from mmdet.datasets import CocoDataset
    words = []
    for name in tuple(CLASS_NAMES) + tuple(CocoDataset.METAINFO['classes']):
        words += name.lower().replace('_', ' ').split()
    letters = list(string.ascii_lowercase + string.digits)
    ordered = _SPECIAL + _PUNCTUATION + words + letters + [f'##{c}' for c in letters]
    return list(dict.fromkeys(ordered))


def tiny_bert(directory: Optional[str] = None) -> str:
    """The directory of the tiny BERT (written on first use; by default under the temporary folder, shared by
    the processes of a machine and rewritten only when its settings change). Seeded: always the same weights."""
    vocab = tiny_bert_vocab()
    if directory is not None:
        _write_tiny_bert(directory, vocab)
        return directory
    return _cached_tiny_bert(tuple(vocab))


@functools.lru_cache(maxsize=None)
def _cached_tiny_bert(vocab: tuple) -> str:
    import transformers
    key = hashlib.sha1(json.dumps([TINY_BERT, vocab, transformers.__version__]).encode()).hexdigest()[:12]
    directory = osp.join(tempfile.gettempdir(), f'cbnet_tiny_bert_{key}')
    if not osp.isfile(osp.join(directory, 'model.safetensors')):
        staging = tempfile.mkdtemp(prefix='cbnet_tiny_bert_', dir=tempfile.gettempdir())
        _write_tiny_bert(staging, list(vocab))
        try:
            os.rename(staging, directory)  # atomic: another process sees all of it or nothing
        except OSError:  # another process was first
            shutil.rmtree(staging, ignore_errors=True)
    return directory


def _write_tiny_bert(directory: str, vocab: List[str]) -> None:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast
    os.makedirs(directory, exist_ok=True)
    vocab_file = osp.join(directory, 'vocab.txt')
    with open(vocab_file, 'w', encoding='utf-8') as f:
        f.write('\n'.join(vocab) + '\n')
    BertTokenizerFast(vocab_file=vocab_file, do_lower_case=True).save_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), **TINY_BERT)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(config, add_pooling_layer=False).save_pretrained(directory)


# -- configs and batches ----------------------------------------------------------------------------------------
def is_grounding(model_cfg: dict) -> bool:
    """Whether a detector config has a language model (GLIP, Grounding DINO, MM-Grounding-DINO)."""
    return isinstance(model_cfg, dict) and isinstance(model_cfg.get('language_model'), dict)


def use_language_model(model_cfg: dict, name: str) -> dict:
    """Point every language-model name of a grounding model config at ``name`` (in place; returns it)."""
    if is_grounding(model_cfg):
        model_cfg['language_model']['name'] = name
        head = model_cfg.get('bbox_head')
        if isinstance(head, dict) and 'lang_model_name' in head:
            head['lang_model_name'] = name
    return model_cfg


def prompt_words(num_classes: int) -> List[str]:
    """``num_classes`` class names the tiny BERT knows: the toy classes, then COCO's."""
    from mmdet.datasets import CocoDataset
    names = list(dict.fromkeys(tuple(CLASS_NAMES) + tuple(CocoDataset.METAINFO['classes'])))
    if num_classes > len(names):
        raise ValueError(f'at most {len(names)} prompt classes, got {num_classes}')
    return names[:num_classes]


def add_text_prompts(data_samples: Iterable, class_names: Sequence[str]) -> None:
    """Give every data sample the class names as its text prompt (what a grounding dataset's ``text`` holds)."""
    for sample in data_samples:
        sample.text = tuple(class_names)
        sample.custom_entities = True
