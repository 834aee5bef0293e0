"""`solve --engine torch`: Caffe solvers, nets and snapshots trained in PyTorch with Caffe's exact update rule.

The same solver and train/val prototxts as the Caffe engine; the compute layers converted by
`fcnkit.convert`, the training-only behaviour in `layers`, the Data layers as a PyTorch pipeline over the
same LMDBs (`data`), Caffe's update rules and lr policies (`solver`), Caffe's binary snapshot files
(`snapshot`), the engine that `fcnkit.caffe.loop.train` drives (`engine`).
"""

from fcnkit.caffe.torch_engine.engine import TorchEngine, prepare_torch_solver

__all__ = ["TorchEngine", "prepare_torch_solver"]
