"""Stand-in for pymeshlab, for the GPU kit's environment only (bench/gpu/run.sh puts this
folder on PYTHONPATH when the real pymeshlab does not import).

``import hy3dgen.shapegen`` imports hy3dgen's postprocessors, which import pymeshlab at
module level and name ``pymeshlab.MeshSet`` / ``pymeshlab.Mesh`` in their signatures.
The project never runs those postprocessors (pipeline/mesh.py does the clean-up), and
pymeshlab is far too large to carry to the GPU machine. So these names exist and
importing works, but using any of them raises at once, saying why.
"""

STANDIN = True
__version__ = "0+gpu-kit-standin"

_WHY = (
    "pymeshlab is a stand-in in the GPU kit's environment: hy3dgen's postprocessors "
    "are not used by this project, so nothing may call pymeshlab here."
)


class _Unavailable:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(_WHY)


class MeshSet(_Unavailable):
    """Named in hy3dgen's signatures; constructing one raises."""


class Mesh(_Unavailable):
    """Named in hy3dgen's signatures; constructing one raises."""


def __getattr__(name: str) -> object:
    raise AttributeError(f"pymeshlab.{name}: {_WHY}")
