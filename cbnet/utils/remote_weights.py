"""A ``Pretrained`` init whose checkpoint cannot be fetched (offline machine, firewall, bad URL): one message
that names the weights, where they come from, and the two ways out, instead of a 30-line URLError traceback.

mmengine resolves ``torchvision://``, ``open-mmlab://``, ``mmcls://`` and ``http(s)://`` checkpoints to URLs and
downloads them into torch's hub cache when a model is initialised; a network failure then surfaces deep in
``urllib``. :func:`unavailable_pretrained_message` is used by the composite backbone (which loads its inner
backbone's weights itself) and by cbnet's tools for any backbone.
"""
import os.path as osp
import socket
import urllib.error
from typing import Any, Iterator, List, Optional, Tuple

REMOTE_PREFIXES = ('torchvision://', 'open-mmlab://', 'openmmlab://', 'mmcls://', 'pavi://', 'http://', 'https://',
                   's3://')
NETWORK_ERRORS = (urllib.error.URLError, socket.timeout, socket.gaierror, ConnectionError, TimeoutError)


class PretrainedUnavailableError(RuntimeError):
    """A ``Pretrained`` checkpoint could not be fetched or found; the message says what to do instead."""


def is_remote(checkpoint: Any) -> bool:
    return isinstance(checkpoint, str) and checkpoint.startswith(REMOTE_PREFIXES)


def network_error_in_chain(error: BaseException) -> Optional[BaseException]:
    """The network error behind ``error`` (itself, its cause or its context), if there is one."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, NETWORK_ERRORS):
            return error
        error = error.__cause__ or error.__context__
    return None


def checkpoint_url(checkpoint: str) -> Optional[str]:
    """The URL mmengine downloads ``checkpoint`` from (None if it cannot tell)."""
    from mmengine.runner import checkpoint as ckpt
    try:
        if checkpoint.startswith('torchvision://'):
            return ckpt.get_torchvision_models().get(checkpoint[len('torchvision://'):])
        if checkpoint.startswith(('open-mmlab://', 'openmmlab://')):
            name = checkpoint.split('://', 1)[1]
            name = ckpt.get_deprecated_model_names().get(name, name)
            url = ckpt.get_external_models().get(name)
            return url if url is None or url.startswith('http') else None
        if checkpoint.startswith('mmcls://'):
            return ckpt.get_mmcls_models().get(checkpoint[len('mmcls://'):])
    except Exception:  # the model lists are optional metadata: the message falls back to the name
        return None
    return checkpoint if checkpoint.startswith(('http://', 'https://')) else None


def hub_cache_file(url: Optional[str]) -> Optional[str]:
    """Where torch's hub cache keeps a download of ``url`` (a file placed there is used without fetching)."""
    if not url:
        return None
    from torch.hub import get_dir
    return osp.join(get_dir(), 'checkpoints', osp.basename(url.split('?')[0]))


def unavailable_pretrained_message(checkpoint: str, config_key: str, reason: BaseException) -> str:
    """Which weights, from where, why not, and the two ways out (a local file, or no pretraining)."""
    url = checkpoint_url(checkpoint) if is_remote(checkpoint) else None
    where = f' from {url}' if url and url != checkpoint else ''
    cache = hub_cache_file(url)
    cache_text = f' (or put the downloaded file at {cache}, where it is looked for first)' if cache else ''
    return (f'Cannot load the pretrained weights {checkpoint!r}{where} of {config_key} '
            f'(init_cfg=dict(type=\'Pretrained\', ...)): {type(reason).__name__}: {reason}. Either download the file '
            f'on a machine with access and give its local path: --cfg-options {config_key}.checkpoint=/path/to/'
            f'{osp.basename((url or checkpoint).split("?")[0]).replace("://", "_") or "weights.pth"}{cache_text}; '
            f'or train from scratch, without pretrained weights: --cfg-options {config_key}=None.')


def pretrained_entries(model_cfg: Any, prefix: str = 'model') -> Iterator[Tuple[str, str]]:
    """``(config key of the init_cfg, checkpoint)`` of every ``Pretrained`` init in a model config."""
    if isinstance(model_cfg, dict):
        init = model_cfg.get('init_cfg')
        inits: List[Any] = init if isinstance(init, (list, tuple)) else [init]
        for i, entry in enumerate(inits):
            if isinstance(entry, dict) and entry.get('type') == 'Pretrained' and entry.get('checkpoint'):
                key = f'{prefix}.init_cfg' if not isinstance(init, (list, tuple)) else f'{prefix}.init_cfg.{i}'
                yield key, entry['checkpoint']
        for key, value in model_cfg.items():
            if key != 'init_cfg':
                yield from pretrained_entries(value, f'{prefix}.{key}')
    elif isinstance(model_cfg, (list, tuple)):
        for i, value in enumerate(model_cfg):
            yield from pretrained_entries(value, f'{prefix}.{i}')


def explain_unavailable_pretrained(model_cfg: Any, error: BaseException) -> Optional[str]:
    """The message for a network ``error`` raised while a model of ``model_cfg`` was initialised, or None if
    the error is not a network error or the config has no remote ``Pretrained`` init."""
    reason = network_error_in_chain(error)
    if reason is None:
        return None
    remote = [(key, ckpt) for key, ckpt in pretrained_entries(model_cfg) if is_remote(ckpt)]
    missing = [(key, ckpt) for key, ckpt in remote if not _cached(ckpt)]
    entries = missing or remote
    if not entries:
        return None
    return '\n'.join(unavailable_pretrained_message(ckpt, key, reason) for key, ckpt in entries)


def _cached(checkpoint: str) -> bool:
    cache = hub_cache_file(checkpoint_url(checkpoint))
    return bool(cache) and osp.isfile(cache)
