"""Data preparation (issue 3): white-background masks, composites over scenes, paired Caffe LMDBs,
the embedded sample dataset, and the VOC 2012 download.

Steps (library functions; `prep STEP` is the CLI, `data_prep/*.py` the per-step scripts):

* masks.run_masks(photos_dir, out_dir)          the paper's near-white rule, with clean-up
* composite.run_composite(objects, bgs, out, n) random scale/position pastes, seed-reproducible
* lmdb_build.build_lmdbs(pairs, out)            {train,val}_{image,label}_lmdb + manifest.json
* lmdb_build.verify_lmdbs(out)                  counts, key alignment, shapes, label values
* sample.build_sample_dataset(root)             the default dataset, no download
* fetch.fetch("voc2012", dest)                  checksummed download + safe extraction
"""
