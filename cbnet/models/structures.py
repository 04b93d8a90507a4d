"""The value a composite backbone returns in training: the features of every branch."""
from typing import Callable, Sequence, Tuple

WRONG_CONSUMER = (
    'CBNet returned the features of all {n} branches (it does so in training mode), but this module '
    'expected one feature pyramid. Training a composite backbone needs a CB detector: change the detector '
    "type to its CB variant (e.g. type='FasterRCNN' -> type='CBFasterRCNN'), or run "
    '`python tools/cbnetify.py YOUR_CONFIG -o NEW_CONFIG`. Use `.lead` for the lead branch only.')


class MultiBranchFeatures:
    """Per-branch features of a composite backbone, assisting branches first and the lead last.

    Deliberately not a tuple: an mmdet neck or head written for one pyramid would otherwise take the branches
    for pyramid levels and fail far away (or, worse, silently). Any sequence use raises an error that names
    the fix; CB-aware code uses :attr:`branches`, :attr:`lead` or :meth:`map`.
    """

    __slots__ = ('branches', )

    def __init__(self, branches: Sequence) -> None:
        if len(branches) < 2:
            raise ValueError('MultiBranchFeatures needs at least two branches')
        self.branches = tuple(branches)

    @property
    def lead(self):
        return self.branches[-1]

    @property
    def assisting(self) -> Tuple:
        return self.branches[:-1]

    @property
    def num_branches(self) -> int:
        return len(self.branches)

    def map(self, fn: Callable) -> 'MultiBranchFeatures':
        """Apply ``fn`` (e.g. a shared neck) to every branch."""
        return MultiBranchFeatures([fn(b) for b in self.branches])

    def _refuse(self, *args, **kwargs):
        raise TypeError(WRONG_CONSUMER.format(n=len(self.branches)))

    __len__ = __getitem__ = __iter__ = _refuse

    def __repr__(self) -> str:
        return f'MultiBranchFeatures(num_branches={len(self.branches)})'
