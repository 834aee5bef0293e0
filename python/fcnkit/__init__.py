"""fcnkit: a Caffe-faithful reproduction of the FCN sneaker-segmentation study, plus caffe2torch."""

__version__ = "0.1.0"
