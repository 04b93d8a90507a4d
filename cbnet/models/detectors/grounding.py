"""The grounding kind (GLIP, Grounding DINO, MM-Grounding-DINO): one text encoding per batch, shared by all branches.

These detectors encode the text prompt (the class names, or a caption) with a language model (BERT) inside their
own ``loss``. Run once per branch, that would encode the same prompt K times and give each branch a different
dropout draw of it. Here the language model runs once per training step: while the branches' losses are
computed, every call with the same prompts returns (a shallow copy of) the first call's output, so its gradient
collects the losses of all branches. Each branch still gets its own visual features, its own pass through the
fusion layers / transformer and its own losses, exactly as in the plain detector.

Building also turns transformers' failure to find the language model (no network, no local copy) into one
:class:`LanguageModelNotFound` that says where the name comes from and how to point it at a local directory.
"""
import contextlib
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmdet.models.detectors import GLIP, GroundingDINO
from torch import Tensor

from ..structures import MultiBranchFeatures
from .assisted import AssistedDetectorMixin, register_kind
from .detr import DETRAssistedMixin

#: where a grounding config names its language model (the model's text encoder, GLIP's fusion head)
LANGUAGE_MODEL_KEYS = ('model.language_model.name', 'model.bbox_head.lang_model_name')


class LanguageModelNotFound(OSError):
    """transformers could not load the language model a grounding detector needs (offline, no local copy)."""


def language_model_help(name: str) -> str:
    """How to make ``name`` loadable without network access (the text of the error and of cbnetify's header)."""
    return (f"transformers loads the language model {name!r} with from_pretrained when the detector is built: from "
            "the Hugging Face hub, its local cache (HF_HOME; HF_HUB_OFFLINE=1 uses only the cache) or a local "
            "directory. Offline, point the config at a directory that holds config.json, vocab.txt, the tokenizer "
            "files and the weights (what save_pretrained writes): set lang_model_name = '/path/to/bert' in the config "
            f"(it feeds {' and '.join(LANGUAGE_MODEL_KEYS)}; set those too where a config overrides them, and the "
            "tokenizer_name of text transforms in its train pipeline).")


#: the transformers release this project pins for the grounding detectors (requirements/grounding.txt)
TRANSFORMERS_PIN = '4.51.3'


class GroundingAssistedMixin(AssistedDetectorMixin):
    """Assistant supervision with the text encoder run once per batch (see the module doc)."""

    #: the first transformers release whose API the mmdet 3.3 code of this detector no longer matches
    transformers_breaks_at: Tuple[int, int] = (5, 0)
    #: what breaks there
    transformers_break: str = ''

    def __init__(self, *args, **kwargs) -> None:
        _check_transformers(type(self))
        try:
            super().__init__(*args, **kwargs)
        except OSError as error:
            name = _language_model_name(kwargs)
            if name is None or osp.isdir(name) or isinstance(error, LanguageModelNotFound):
                raise
            raise LanguageModelNotFound(f'{type(self).__name__}: the language model {name!r} cannot be loaded '
                                        f'({_first_line(error)}). {language_model_help(name)}') from None

    def branch_losses(self, feats: MultiBranchFeatures, batch_inputs: Tensor, batch_data_samples) -> List[dict]:
        with encoded_once(self.language_model):
            return super().branch_losses(feats, batch_inputs, batch_data_samples)


@register_kind(GLIP)
class GLIPAssistedMixin(GroundingAssistedMixin):
    """GLIP: a one-stage (ATSS) detector whose head fuses the text; every branch runs the head's fusion."""

    transformers_breaks_at = (4, 55)
    transformers_break = ("its early-fusion BERT layers subclass transformers' BertAttention, which passes "
                          'cache_position to them from 4.55 on, and import apply_chunking_to_forward from '
                          'transformers.modeling_utils, gone in 4.56')


@register_kind(GroundingDINO)
class GroundingDINOAssistedMixin(GroundingAssistedMixin, DETRAssistedMixin):
    """Grounding DINO (and MM-Grounding-DINO): a DINO whose encoder and decoder fuse the text. Branches run one
    after the other (``branch_batching='sequential'``); Grounding DINO prepares the text inside its own ``loss``,
    so ``'stacked'`` is refused with that reason (see :class:`DETRAssistedMixin`)."""

    transformers_breaks_at = (5, 0)
    transformers_break = "mmdet's BertModel calls tokenizer.batch_encode_plus, removed in transformers 5.0"


def _check_transformers(cls: type) -> None:
    """A clear error where the installed transformers is one mmdet 3.3's code of ``cls`` cannot run with."""
    try:
        import transformers
    except ImportError:
        raise ImportError(f'{cls.__name__} needs transformers (its text encoder is a BERT): pip install '
                          f'transformers=={TRANSFORMERS_PIN} (see requirements/grounding.txt).') from None
    version = tuple(int(p) for p in transformers.__version__.split('.')[:2] if p.isdigit())
    if version >= cls.transformers_breaks_at:
        raise RuntimeError(f'{cls.__name__} cannot run with transformers {transformers.__version__}: '
                           f'{cls.transformers_break or "its API changed"}. Install transformers<'
                           f'{".".join(map(str, cls.transformers_breaks_at))} (this project pins {TRANSFORMERS_PIN}: '
                           'requirements/grounding.txt).')


@contextlib.contextmanager
def encoded_once(language_model):
    """While active, ``language_model(captions)`` encodes each list of captions once; later calls with the same
    captions return a shallow copy of that output (the detectors replace entries of the dict they get: Grounding
    DINO maps ``embedded``, GLIP's fusion replaces ``hidden``)."""
    own = language_model.forward
    outputs: Dict[tuple, dict] = {}

    def forward(captions, **kwargs):
        key = (tuple(captions), tuple(sorted(kwargs.items())))
        if key not in outputs:
            outputs[key] = own(captions, **kwargs)
        return dict(outputs[key])

    language_model.forward = forward  # an instance attribute shadows the method
    try:
        yield
    finally:
        del language_model.forward


def _language_model_name(kwargs: dict) -> Optional[str]:
    language_model = kwargs.get('language_model') or {}
    name = language_model.get('name', 'bert-base-uncased') if hasattr(language_model, 'get') else None
    return name if isinstance(name, str) else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
