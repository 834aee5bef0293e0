"""Training of the natively implemented (PyTorch) model families: `fcnkit train MODEL`.

`trainer.train(name, data, ...)` is the one loop (seeded, progress bar, per-epoch validation, safetensors +
JSON sidecar checkpoints that `fcnkit.inference.load` reads, resume, Ctrl-C saves); `recipe` turns a
model's registry entry into its schedule; `data` reads the prepared datasets at the model's input size
(with the seeds' augmentation, or labelled patches for the patch CNN); `checkpoint` writes it all atomically.
"""
