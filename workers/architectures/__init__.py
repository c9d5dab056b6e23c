"""Registry of trusted plain-PyTorch architectures (DESIGN.md section 5).

Users upload weights, never code: a checkpoint names an architecture, and :func:`build` instantiates it
from code the server trusts, sizing hidden layers from the state_dict's shapes (structured pruning).

Every model exposes its penultimate features ``features(x) -> (B, D)`` (the input of the final Linear,
after global pooling) and ``head``, that Linear, with ``forward(x) == head(features(x))``: the robustness
geometry of Li et al. (arXiv 2206.07918) decomposes ``head`` over these features.

Architectures, their modules, default input shapes and final Linear:

- ``mlp``, ``small_cnn`` (:mod:`.small`): ``(1, 8, 8)``, ``head``.
- ``resnet20``, ``resnet32``, ``resnet44``, ``resnet56`` (:mod:`.cifar_resnet`, akamaster layout):
  ``(3, 32, 32)``, ``linear``.
- ``vgg11_bn``, ``vgg16_bn`` (:mod:`.vgg`, chenyaofo layout, kuangliu detected): ``(3, 32, 32)``,
  ``classifier[6]`` (kuangliu: ``classifier``).
- ``torchvision.<name>``, ``timm.<name>`` when installed (:mod:`.external`, wrapped in :class:`ZooModel`):
  ``(3, 224, 224)``, the last ``nn.Linear``.
- operator entry points in group ``prunescope.architectures`` (:mod:`.external`): their own.

Built-in and zoo models also have ``head``, their final Linear (a property where the key name differs).

A factory is called as ``factory(num_classes=..., input_shape=..., state_dict=...)`` with ``state_dict``
already passed through :func:`normalize_keys` (or ``None``), and returns an untrained module; :func:`build`
loads the weights.
"""

from workers.architectures import cifar_resnet, small, vgg  # noqa: F401  (registers the built-ins)
from workers.architectures.external import ZooModel, load_entry_points
from workers.architectures.registry import (
    Architecture,
    ArchitectureError,
    build,
    get,
    infer_input_shape,
    infer_num_classes,
    load_weights,
    names,
    normalize_keys,
    register,
)
from workers.architectures.small import MLP, SmallCNN

__all__ = [
    "MLP",
    "Architecture",
    "ArchitectureError",
    "SmallCNN",
    "ZooModel",
    "build",
    "get",
    "infer_input_shape",
    "infer_num_classes",
    "load_entry_points",
    "load_weights",
    "names",
    "normalize_keys",
    "register",
]
