"""cbnet: CBNetV2 composite backbones (Dual/Triple) for MMDetection 3.x.

Like the OpenMMLab packages, the wheel carries its configs, tools and model zoo index under ``cbnet/.mim/`` (what
``_base_ = 'cbnet::cbnet/dual_swin_l_htc.py'``, ``mim search cbnet`` and ``mim train cbnet ...`` look up):
``build_py`` copies the repository's ``configs/``, ``tools/`` and ``model-index.yml`` there. In a source checkout and
an editable install, ``cbnet/.mim/{configs,tools,model-index.yml}`` are links to them instead, so edits take effect
without reinstalling.
"""
import os
import os.path as osp
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
#: repository folder -> where it goes inside the installed package
MIM_FOLDERS = {'configs': 'configs', 'tools': 'tools'}
#: repository files copied into cbnet/.mim/
MIM_FILES = ('model-index.yml', )


def read_version() -> str:
    with open(osp.join(HERE, 'cbnet', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def read_requirements(name: str) -> list:
    with open(osp.join(HERE, 'requirements', name)) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


class BuildPyWithMim(build_py):
    """``build_py`` that also puts real copies of ``configs/``, ``tools/`` and ``model-index.yml`` into
    ``cbnet/.mim/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # the source tree's cbnet/.mim (configs linked to configs/) is the one imported
        mim = osp.join(self.build_lib, 'cbnet', '.mim')
        ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')
        for src, dst in MIM_FOLDERS.items():
            target = osp.join(mim, dst)
            if osp.islink(target) or osp.isfile(target):  # never write through a link into the source tree
                os.remove(target)
            shutil.copytree(osp.join(HERE, src), target, ignore=ignore, dirs_exist_ok=True)
        for name in MIM_FILES:
            target = osp.join(mim, name)
            if osp.islink(target):
                os.remove(target)
            shutil.copyfile(osp.join(HERE, name), target)


setup(
    name='cbnet',
    version=read_version(),
    description='CBNetV2 composite backbones (Dual/Triple) for MMDetection 3.x',
    long_description=open(osp.join(HERE, 'README.md')).read() if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tests.*', 'tools', 'configs', 'benchmarks')),
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt')
    },
    cmdclass={'build_py': BuildPyWithMim},
    license='Apache-2.0',
    zip_safe=False,
)
