"""Numbers the other seed systems state (../shared/seeds), where the toolkit reuses them.

ExtractNet (extractnet-report.txt §2): the mask post-processing of its web tool: Gaussian blur with a
27-px kernel, threshold 0.5, morphological opening with a 39-px kernel, on 224x224 masks.
"""

EXTRACTNET_BLUR = 27
EXTRACTNET_THRESHOLD = 0.5
EXTRACTNET_OPEN = 39
EXTRACTNET_SIZE = 224
