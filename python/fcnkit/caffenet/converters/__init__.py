"""One converter function per Caffe layer type, grouped by kind of layer; importing this package registers
them all into `fcnkit.caffenet.registry.LAYERS`.

To add a layer: a function decorated with `@register("CaffeType")` in the module of its kind (or a new
module listed below) that returns a `ModuleSpec`, with a Caffe-semantics class in the matching module of
`fcnkit.caffenet.modules` where `torch.nn` differs from Caffe.
"""

from fcnkit.caffenet.converters import (
    activations,
    blobs,
    detection,
    forks,
    normalization,
    python_layer,
    recurrent,
    spatial,
)

__all__ = ["activations", "blobs", "detection", "forks", "normalization", "python_layer", "recurrent", "spatial"]
