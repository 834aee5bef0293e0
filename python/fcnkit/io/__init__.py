"""File formats and transfers several areas share: Caffe's schema (prototxt, caffemodel, mean files),
protobuf wire primitives, Datum records in LMDB, checksummed downloads, atomic file writes."""
