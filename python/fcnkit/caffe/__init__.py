"""Everything that runs real Caffe: pycaffe loading, the NetSpec generator and the committed files it
writes, Python layers, net surgery, the `solve` driver, VGG-16 weights, the paper-fidelity check."""
