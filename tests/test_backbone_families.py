"""Every backbone family through one harness, generated from the adapter registry and the family test cases
(``cbnet/testing/backbone_cases/``): a registered family without a case fails here.

Per case: zero-init invariant (every branch is the single backbone loaded from its real checkpoint file, and
every connection outputs zero), K = 2 and 3 with every registered composition (eval: the lead's tuple; train:
all branches; every trainable parameter gets a gradient), the single backbone's training behaviour in every
branch (frozen parameters, train/eval mode of every module, for each option set), pruned parts are
parameter-free placeholders, ``with_cp`` changes nothing but memory, ``share_weights``.
"""
import pytest
import torch
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from cbnet.converters import expand_single_state_dict, load_state_dict_file
from cbnet.models import MultiBranchFeatures
from cbnet.models.backbones import COMPOSITIONS, Connection
from cbnet.models.backbones.adapters import Pruned, adapted_class, get_adapter, registered_backbone_classes
from cbnet.testing import images
from cbnet.testing.backbone_cases import CASES
from cbnet.testing.backbones import perturb_connections, torch_threads
from cbnet.testing.checkpoint_formats import calibrate_norms_, randomize_

NAMES = list(CASES)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    with torch_threads(1):
        yield


def load_detector_checkpoint(backbone, path):
    """What load_from does with a plain detector checkpoint: its backbone expanded into every branch."""
    detector = torch.nn.Module()
    detector.backbone = backbone
    state, _ = load_state_dict_file(path)
    expanded, _ = expand_single_state_dict(detector, {k: v for k, v in state.items() if k.startswith('backbone.')})
    detector.load_state_dict(expanded, strict=True)


def build_cb(case, num_backbones=2, inner=None, **kwargs):
    return MODELS.build(dict(type='CBNet', backbone=case.inner(**(inner or {})), num_backbones=num_backbones, **kwargs))


def shared_stages(case):
    """del_stages=1 (the stem and the first stage shared), or 0 for a family with a single stage (HiViT)."""
    single = MODELS.build(case.inner())
    return min(1, get_adapter(single).num_stages(single) - 1)


def case_images(case):
    return images(size=case.image_size)


def shapes(features):
    return [tuple(f.shape) for f in features]


def test_every_registered_family_has_a_case():
    covered = {adapted_class(type(MODELS.build(case.inner()))) for case in CASES.values()}
    missing = [f'{c.__module__}.{c.__name__}' for c in registered_backbone_classes() if c not in covered]
    assert not missing, (f'registered backbone families without a test case: {missing}; add one in '
                         'cbnet/testing/backbone_cases/ (see cbnet/models/backbones/adapters/base.py)')


# -- zero-init invariant ------------------------------------------------------------------------------------
def record_connection_outputs(model):
    outputs = {}
    for name, module in model.composition.named_modules():
        if isinstance(module, Connection):
            module.register_forward_hook(lambda m, args, out, name=name: outputs.setdefault(name, []).append(out))
    return outputs


@pytest.mark.parametrize('num_backbones', [2, 3])
@pytest.mark.parametrize('name', NAMES)
def test_zero_init_every_branch_is_the_pretrained_single_backbone(name, num_backbones, tmp_path):
    case = CASES[name]
    x = case_images(case)
    single = calibrate_norms_(randomize_(MODELS.build(case.inner()), skip=case.rebuilt), x)
    overrides = case.write_checkpoint(single, str(tmp_path / 'checkpoint.pth'))
    model = build_cb(case, num_backbones, inner=overrides)
    model.init_weights()
    if overrides is None:  # the family's weights come with a detector checkpoint (load_from): expanded
        load_detector_checkpoint(model, str(tmp_path / 'checkpoint.pth'))
    reference = single.state_dict()
    for k, branch in enumerate(model.branches):  # the checkpoint (randomised: no initialiser makes it) is everywhere
        for key, value in branch.state_dict().items():
            assert torch.equal(value, reference[key]), (k, key)

    connection_outputs = record_connection_outputs(model)
    with torch.no_grad():
        model.eval(), single.eval()
        lead, expected = model(x), single(x)
        assert all(torch.isfinite(f).all() for f in expected), 'the case needs weights with finite outputs'
        assert isinstance(lead, tuple) and len(lead) == len(expected)
        assert all(torch.equal(a, b) for a, b in zip(lead, expected))
        model.train(), single.train()
        feats, expected = model(x), single(x)
    assert feats.num_branches == num_backbones
    for k, branch in enumerate(feats.branches):
        assert all(torch.equal(a, b) for a, b in zip(branch, expected)), k

    connections = [n for n, m in model.composition.named_modules() if isinstance(m, Connection)]
    assert connections and sorted(connection_outputs) == sorted(connections), 'every connection must have run'
    nonzero = [n for n, outs in connection_outputs.items() if any(torch.count_nonzero(o) for o in outs)]
    assert not nonzero, f'connections that do not start at zero: {nonzero}'


# -- every K and composition builds, runs and trains every parameter --------------------------------------
def unused_by_family(case):
    """Parameters the single backbone itself leaves without gradient in training (mmpretrain 1.2's DeiT3 runs
    ``ln1`` where ``ln2`` belongs): the family's, not the composite's, which must add none."""
    single = MODELS.build(case.inner())
    single.train()
    sum(f.float().mean() for f in single(case_images(case))).backward()
    return {n for n, p in single.named_parameters() if p.requires_grad and p.grad is None}


def inner(name):
    """``branches.k.X`` -> ``X``, the inner backbone's name."""
    return name.split('.', 2)[2] if name.startswith('branches.') else name


@pytest.mark.parametrize('num_backbones', [2, 3])
@pytest.mark.parametrize('composition', sorted(COMPOSITIONS.module_dict))
@pytest.mark.parametrize('name', NAMES)
def test_every_composition_runs_and_trains_every_parameter(name, composition, num_backbones):
    case = CASES[name]
    model = build_cb(case, num_backbones, composition=composition)
    single = MODELS.build(case.inner())
    x = case_images(case)
    model.eval(), single.eval()
    with torch.no_grad():
        lead, expected = model(x), single(x)
    assert isinstance(lead, tuple) and shapes(lead) == shapes(expected)

    model.train()
    assert not any(m.training for m in model.composition.modules() if isinstance(m, _BatchNorm))
    perturb_connections(model)
    feats = model(x)
    assert isinstance(feats, MultiBranchFeatures) and feats.num_branches == num_backbones
    assert all(shapes(branch) == shapes(expected) for branch in feats.branches)
    sum(f.float().mean() for branch in feats.branches for f in branch).backward()
    unused = unused_by_family(case)
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and inner(n) not in unused]
    assert not dead, f'parameters without gradient (DDP would need find_unused_parameters): {dead}'


# -- training behaviour: the single backbone's, in every branch ---------------------------------------------
TRAINING = [(name, i) for name, case in CASES.items() for i in range(len(case.options))]


def option_id(value):
    name, i = value
    return name + ''.join(f'-{k}={v}' for k, v in CASES[name].options[i].items())


def training_state(module):
    """Parameters that train and the mode of every module except placeholders (they hold nothing). A module
    shared inside the backbone (EVA-02's RoPE in every block) is listed under each of its names: which name
    comes first depends on what pruning removed."""
    grads = {n: p.requires_grad for n, p in module.named_parameters()}
    modes = {n: m.training for n, m in module.named_modules(remove_duplicate=False) if not isinstance(m, Pruned)}
    return grads, modes


@pytest.mark.parametrize('name,option', TRAINING, ids=[option_id(t) for t in TRAINING])
def test_every_branch_trains_like_the_single_backbone(name, option):
    case = CASES[name]
    options = case.options[option]
    single = MODELS.build(case.inner(**options))
    model = build_cb(case, 3, inner=options, del_stages=shared_stages(case))
    for mode in (True, False, True):
        single.train(mode), model.train(mode)
        grads, modes = training_state(single)
        for k, branch in enumerate(model.branches):
            branch_grads, branch_modes = training_state(branch)
            assert branch_grads == {n: grads[n] for n in branch_grads}, (k, mode)
            assert branch_modes == {n: modes[n] for n in branch_modes}, (k, mode)
        assert not any(m.training for m in model.composition.modules() if isinstance(m, _BatchNorm))


# -- pruning ------------------------------------------------------------------------------------------------
def under(key, names):
    return any(key == n or key.startswith(n + '.') for n in names)


@pytest.mark.parametrize('name', NAMES)
def test_pruned_parts_are_parameter_free_placeholders(name):
    case = CASES[name]
    del_stages = shared_stages(case)
    model = build_cb(case, 3, del_stages=del_stages)
    single = MODELS.build(case.inner())
    pruned = model.adapter.stem_modules(single)
    for i in range(del_stages):
        pruned += model.adapter.stage_modules(single, i)
    assert list(model.branches[0].state_dict()) == list(single.state_dict())
    params = [n for n, _ in single.named_parameters()]
    for branch in model.branches[1:]:
        modules = dict(branch.named_modules())
        for part in pruned:
            if part in modules:
                assert isinstance(modules[part], Pruned), part
                with pytest.raises(RuntimeError, match='pruned in this branch'):
                    modules[part](case_images(case))
            else:  # a bare parameter: an empty tensor that is neither a parameter nor saved
                assert branch.get_buffer(part).numel() == 0, part
        assert list(branch.state_dict()) == [k for k in single.state_dict() if not under(k, pruned)]
        assert [n for n, _ in branch.named_parameters()] == [n for n in params if not under(n, pruned)]


# -- gradient checkpointing, shared weights ------------------------------------------------------------------
@pytest.mark.parametrize('name', [n for n, c in CASES.items() if c.with_cp])
def test_with_cp_same_outputs_and_gradients(name, monkeypatch):
    case = CASES[name]
    plain = build_cb(case, 2)
    perturb_connections(plain)
    checkpointed = build_cb(case, 2, inner=dict(with_cp=True))
    state = plain.state_dict()
    with torch.no_grad():  # tensor by tensor: a family's load hook may drop tables it rebuilds (Swin v2)
        for key, tensor in checkpointed.state_dict(keep_vars=True).items():
            tensor.copy_(state[key])
    calls = []
    original = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint', lambda *a, **kw: calls.append(1) or original(*a, **kw))
    x = case_images(case)
    results = []
    for model in (plain, checkpointed):
        model.train()
        feats = model(x)
        loss = sum((f * f).mean() for branch in feats.branches for f in branch)
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    assert calls, 'with_cp=True must checkpoint the blocks of the branches'
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, rtol=1e-5)
    assert grads_a and grads_a.keys() == grads_b.keys()
    # equal up to float rounding: recomputation may sum in another order; gradients that are mathematically
    # zero (a conv bias before a train-mode BN) are rounding noise, hence the tolerance scaled to all gradients
    scale = max(g.abs().max() for g in grads_b.values())
    for n in grads_a:
        assert torch.allclose(grads_a[n], grads_b[n], rtol=1e-4, atol=1e-6 * scale), n


@pytest.mark.parametrize('name', NAMES)
def test_share_weights_adds_only_connections(name):
    case = CASES[name]
    single = MODELS.build(case.inner())
    shared = build_cb(case, 3, share_weights=True)
    n_single = sum(p.numel() for p in single.parameters())
    n_connections = sum(p.numel() for p in shared.composition.parameters())
    assert n_connections > 0 and sum(p.numel() for p in shared.parameters()) == n_single + n_connections
    shared.train()
    perturb_connections(shared)
    feats = shared(case_images(case))
    assert feats.num_branches == 3
    sum(f.mean() for branch in feats.branches for f in branch).backward()
    unused = unused_by_family(case)
    assert all(p.grad is not None for n, p in shared.named_parameters() if p.requires_grad and inner(n) not in unused)
