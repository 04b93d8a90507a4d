"""The model zoo index (model-index.yml -> configs/cbnet/metafile.yml, what ``mim search/download cbnet`` read)
agrees with the configs it names and with README.md's table of official checkpoints.

Every entry's config exists (in the repository and where mim and mmengine look: ``cbnet/.mim/``), loads, is the
model its metadata describes (epochs, batch, detector with or without masks); its parameter count is the one
``tests/test_paper_configs.py`` checks the built model against (SWA configs: ``tests/test_swa_ema.py`` checks
that they build their normal config's model).
"""
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config
from modelindex.load_model_index import load

from cbnet.testing import REPO
from tests.test_paper_configs import PAPER_PARAMS_M

INDEX = osp.join(REPO, 'model-index.yml')
MIM_DIR = osp.join(REPO, 'cbnet', '.mim')
OFFICIAL = 'https://github.com/CBNetwork/storage/releases/download/v1.0.0/'
GPUS = 8  # the official runs: images per GPU x 8 GPUs
SWA_EPOCHS = 12


def _metafile():
    with open(INDEX) as f:
        imports = yaml.safe_load(f)['Import']
    assert len(imports) == 1
    with open(osp.join(REPO, imports[0])) as f:
        return yaml.safe_load(f)


MODELS = {m['Name']: m for m in _metafile()['Models']}


def _metric(model: dict, dataset: str, name: str):
    values = [r['Metrics'][name] for r in model['Results'] if r['Dataset'] == dataset and name in r['Metrics']]
    assert len(values) <= 1, (model['Name'], dataset, name)
    return values[0] if values else None


def test_the_package_index_is_the_repository_index_and_its_imports_resolve_there():
    # mim and mmengine read <package>/.mim/model-index.yml and resolve its imports relative to <package>/.mim
    with open(INDEX) as f, open(osp.join(MIM_DIR, 'model-index.yml')) as g:
        assert f.read() == g.read()
    index = load(osp.join(MIM_DIR, 'model-index.yml'))  # the loader mim uses
    assert sorted(m.name for m in index.models) == sorted(MODELS)
    assert [c.name for c in index.collections] == ['CBNetV2']
    for model in index.models:
        assert osp.isfile(osp.join(MIM_DIR, model.config)), model.config


def test_cbnet_config_names_still_resolve_with_an_index():
    # mmengine looks `cbnet::` names up in the index first; a name of the form `cbnet/<config>.py` must still find
    # the file (mmengine compares index entries without their folder and falls back to .mim/configs/<name>)
    cfg = Config.fromstring("_base_ = 'cbnet::cbnet/dual_r50_faster_rcnn.py'\n", '.py')
    assert cfg.model.type == 'CBFasterRCNN'


@pytest.mark.parametrize('name', sorted(MODELS))
def test_entry_matches_its_config(name):
    entry = MODELS[name]
    assert entry['In Collection'] == 'CBNetV2'
    assert entry['Config'] == f'configs/cbnet/{name}.py'
    assert osp.isfile(osp.join(REPO, entry['Config'])) and osp.isfile(osp.join(MIM_DIR, entry['Config']))
    cfg = Config.fromfile(osp.join(REPO, entry['Config']))
    assert cfg.model.type.startswith('CB')
    meta = entry['Metadata']
    swa = name.endswith('_swa')
    base = name[:-len('_swa')] if swa else name
    if swa:  # the model trained the normal schedule (its entry's epochs, checked there), then the SWA stage
        base_epochs = MODELS[base]['Metadata']['Epochs']
        assert cfg.train_cfg.max_epochs == SWA_EPOCHS and meta['Epochs'] == base_epochs + SWA_EPOCHS
        assert 'SWA' in meta['Training Techniques']
    else:
        assert meta['Epochs'] == cfg.train_cfg.max_epochs
    assert meta['Batch Size'] == cfg.train_dataloader.batch_size * GPUS
    assert meta['Parameters'] == PAPER_PARAMS_M[f'{base}.py'] * 1_000_000
    assert ('AdamW' in meta['Training Techniques']) == (cfg.optim_wrapper.optimizer.type == 'AdamW')
    assert ('Mixed Precision Training' in meta['Training Techniques']) == (cfg.optim_wrapper.type == 'AmpOptimWrapper')
    has_masks = 'mask_head' in cfg.model.get('roi_head', {})
    assert _metric(entry, 'COCO', 'box AP') is not None
    assert (_metric(entry, 'COCO', 'mask AP') is not None) == has_masks
    assert entry['Weights'].startswith(OFFICIAL) and entry['Weights'].endswith('.pth.zip')
    assert entry['Weights'].endswith('_swa.pth.zip') == swa


def _readme_checkpoint_table():
    """README.md's table of official checkpoints: {config name: (box, mask, tta box, tta mask, url)}."""
    with open(osp.join(REPO, 'README.md')) as f:
        text = f.read()
    section = text.split('## Converting official CBNetV2 checkpoints', 1)[1].split('\n## ', 1)[0]
    rows, previous = {}, None
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) != 3 or not cells[2].startswith('['):
            continue
        named = re.match(r'`([\w]+)\.py`', cells[0])
        if named:
            name = previous = named.group(1)
        else:
            assert cells[0] == 'same, SWA' and previous, line
            name = f'{previous}_swa'
        box, mask = (None if v.strip() == '-' else float(v) for v in cells[1].split('/'))
        tta = re.search(r'`--tta`: ([\d.]+) / ([\d.]+)', cells[0])
        url = re.search(r'\((https://[^)]+)\)', cells[2]).group(1)
        rows[name] = (box, mask, *(map(float, tta.groups()) if tta else (None, None)), url)
    return rows


def test_readme_checkpoint_table_and_index_agree():
    table = _readme_checkpoint_table()
    assert len(table) >= 12 and sorted(table) == sorted(MODELS)
    for name, (box, mask, tta_box, tta_mask, url) in table.items():
        entry = MODELS[name]
        assert entry['Weights'] == url, name
        assert _metric(entry, 'COCO', 'box AP') == box, name
        assert _metric(entry, 'COCO', 'mask AP') == mask, name
        assert _metric(entry, 'COCO', 'box AP (TTA)') == tta_box, name
        assert _metric(entry, 'COCO', 'mask AP (TTA)') == tta_mask, name
