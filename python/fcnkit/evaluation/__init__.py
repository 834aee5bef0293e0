"""Scoring segmentations: metrics (FCN's histogram scores, Jaccard, Hausdorff), the seed's classical
baseline and post-processing, evaluation data, the evaluation run and its reports, training curves."""
