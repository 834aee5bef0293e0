"""Datasets as the trainers and the scorers read them: images with their labels (`datasets`: paired LMDBs or
photo + mask folders), train/val splits at a model's input size (`splits`), the preprocessing that turns an
image into a net's input (`preprocessing`), and rectangular tags (`boxes`). Writing datasets is `fcnkit.prep`.
"""
