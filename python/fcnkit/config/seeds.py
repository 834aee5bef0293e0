"""The other seeds' numbers (../shared/seeds), and our choices where they are silent (marked "ours").

- `lrn-head-torso.txt` (Pinto & Cardoso): the Label Refinement Network and its U-Net reference;
- `extractnet-report.txt` (Hasan, Khan, Patel): autoencoders and pretrained-encoder models, COCO masks;
- `contour-refining-patch-cnn.txt` (Liedl): a patch classifier refining rectangular tags.
The model families (`fcnkit.models.lrn`, `unet`, `extractnet`, `patchcnn`), `prep coco`, `compare` and
the mask post-processing (`fcnkit.inference.postprocess`) read them from here.
"""

from __future__ import annotations

# -- LRN / U-Net (lrn-head-torso.txt) -----------------------------------------------------------------
LRN_IMAGE_SIZE = 224            # §3 "reshaped to 224x224"
LRN_REFINE_FILTERS = 64         # §2.1 refinement unit: conv 64 + ReLU, conv 1 (number of output channels)
LRN_LR = 1e-4                   # §2.3 Adam, initial learning rate 0.0001 (both models)
LRN_TRAIN_IMAGES, LRN_TEST_IMAGES = 250, 48
LRN_AUGMENT = {"flip": True, "zoom": 0.15, "rotate_deg": 15.0}  # §2.3 flip, zoom, rotation; ranges: ours
LRN_BATCH = 8                   # ours (not stated)
LRN_EPOCHS = 100                # ours: "sufficient epochs to achieve convergence"
LRN_PATIENCE = 10               # ours: a plateau = no val Jaccard gain for this many epochs
# Table 1: Jaccard % (mean, std), Hausdorff (mean, std) on the 48 LFW test images.
LRN_TABLE = {"LRN": (91.67, 5.63, 32.84, 23.05), "LRN-VGG": (92.73, 5.24, 26.28, 20.07),
             "UNET": (89.25, 7.19, 35.18, 19.63), "UNET-VGG": (87.98, 7.53, 44.00, 16.75)}

# -- ExtractNet (extractnet-report.txt) ---------------------------------------------------------------
EXTRACTNET_IMAGE_SIZE = 224     # §3 step 5
# §2 the web tool's mask post-processing: Gaussian blur k=27, threshold 0.5, opening k=39 on 224x224 masks
EXTRACTNET_BLUR = 27
EXTRACTNET_THRESHOLD = 0.5
EXTRACTNET_OPEN = 39
EXTRACTNET_SIZE = EXTRACTNET_IMAGE_SIZE
EXTRACTNET_LR = 1e-3            # §5.2
EXTRACTNET_BATCH = 64           # §5.2
EXTRACTNET_EPOCHS = 80          # §5.2 (the tuning runs)
EXTRACTNET_AE_CHANNELS = (32, 64, 128)  # §4.1.1 3 encoder + 3 decoder layers, kernel 3, stride 2; depths: ours
EXTRACTNET_DECODER_CHANNELS = (256, 128, 64, 32)  # §4.1.3 one kernel-3 deconvolution per downsampling; ours
# COCO prominent-object masks (§3)
COCO_SUPERCATEGORIES = ("person", "vehicle")
COCO_MIN_OBJECT = 0.10          # a prominent object covers at least 10 % of the image
COCO_MAJOR_OBJECT = 0.30        # at least one covers 30 %
COCO_EXTRA_OBJECTS = 3          # up to 3 more prominent objects
COCO_MAX_MASK = 0.90            # reject masks over 90 % of the image
COCO_SIZE = 224                 # resized to 224x224 (aspect ratio not kept)
# Table 1 (validation IoU, 1000-image tuning set) and the final ResNet-50 test IoU
EXTRACTNET_TABLE = {"Baseline": 0.379, "Simple Autoencoder": 0.449, "Interconnected Autoencoder": 0.430,
                    "VGG-19 Encoder (BN), (P)": 0.724, "ResNet-50 Encoder (R), (BN)": 0.750,
                    "ResNet-152 Encoder (R), (BN)": 0.745, "ResNet-50 Encoder Model (test)": 0.842}

# -- Patch CNN (contour-refining-patch-cnn.txt) -------------------------------------------------------
PATCH_SIZE = 32
PATCH_CHANNELS = (32, 64, 128, 128, 128, 1)
PATCH_LEAKY_SLOPE = 0.2
PATCH_BATCH = 128               # ours
PATCH_LR = 1e-3                 # ours (Adam)
PATCH_STEP = 8                  # ours: dense application every 8 px (4, 2, 1: denser, smoother, slower)
PATCH_BORDER = 0.25             # ours: tag-free mode, patches this close to the border (fraction) are background

# -- inputs ------------------------------------------------------------------------------------------
# Nets trained from scratch take BGR minus the VGG mean, divided by ~ImageNet's pixel std (ours); nets
# with Caffe Model Zoo weights take exactly what they were trained on (minus the mean, scale 1).
SCRATCH_INPUT_SCALE = 1 / 58.0
RESNET_MEAN_BGR = (103.939, 116.779, 123.68)  # per-channel mean used with the ResNet Caffe release
