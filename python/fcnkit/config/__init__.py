"""The study's numbers and our choices where it is silent: the one place every other module reads them.

- `paper`: what the paper states (image size, batch, momentum, classes, dataset size) and the
  choices made where it is silent (`SILENT_CHOICES`, each with its source);
- `stages`: the training schedule (FCN-32s -> 16s -> 8s -> composite -> fine-tune) and the two
  variants every stage exists in (the paper's full-size nets, the tiny CPU stand-in);
- `paths`: where data, weights, snapshots and runs live, relative to the project root.
"""
