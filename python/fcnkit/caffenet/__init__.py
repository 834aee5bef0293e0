"""Caffe semantics in PyTorch: the core that both the training engines (`fcnkit.caffe`) and the converter
(`fcnkit.convert`) stand on.

* `registry`: `ModuleSpec`, `LayerCtx`, `register`, `LAYERS`: one converter function per Caffe layer type;
* `converters/`: those functions, one module per kind of layer (registered when this package is imported);
* `modules/`: the Caffe-semantics `torch.nn` modules they build, split along the same seams;
* `graph`: a Caffe net walked in order into a plan of modules, with blob shapes checked on the meta device;
* `model_folder`: the converted-model format (model.py, weights.safetensors, conversion.json), written
  and read here only;
* `pycaffe`: loading the pycaffe build itself (for the parts that run real Caffe).
"""

from fcnkit.caffenet import converters  # registers every converter

__all__ = ["converters"]
