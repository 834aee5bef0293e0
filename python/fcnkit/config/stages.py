"""The study's training schedule: the one table every net, solver, driver and fidelity check reads.

Paper (Falkenhainer, "Semantic Image Segmentation via Fully Convolutional Networks"):
  * FCN-32s: 50 000 iterations, lr 1e-8, dropping to 1e-10 after the first 20 000; momentum 0.99; batch 15;
  * FCN-16s, FCN-8s: 20 000 iterations each at 1e-10, momentum 0.99; each from the previous stage's weights;
  * all three on 224x224 sneakers on white backgrounds (4 500 images);
  * FCN-8s again on sneakers pasted onto PASCAL VOC 2012 scenes, from the white FCN-8s:
    10 000 iterations at 1e-10, then fine-tuned for another 20 000 at 1e-10.
Where the paper is silent the FCN reference (fcn.berkeleyvision.org voc-fcn*) decides: see
`fcnkit.config.paper.SILENT_CHOICES`.

Every stage exists in two variants: the paper's full-size nets, and the tiny (1/16-width) CPU stand-in
`make demo` trains (same topology, its own schedule; not the paper's net).
"""

from __future__ import annotations

from dataclasses import dataclass

from fcnkit.config.paper import BATCH_SIZE, DATASET_SIZE, VAL_FRACTION

# What runs a stage's solver (`solve --engine`, `demo --engine`): real Caffe, the reproduction and the
# default, or the torch engine (the same prototxts with Caffe's update rule in PyTorch).
ENGINES = ("caffe", "torch")

# Distributed training (torchrun): how long a collective waits for the other ranks before the job stops
# (seconds; FCNKIT_DIST_TIMEOUT overrides). Covers rank 0's validation pass, which the others wait out.
DIST_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Stage:
    name: str  # solver/prototxt name
    stride: int  # 32, 16 or 8
    data: str  # "white" or "composite": which LMDB set under data/
    base_lr: float
    max_iter: int
    init_from: str  # previous stage name, or "vgg16"
    step_at: int | None = None  # iteration where lr is multiplied by `gamma`
    gamma: float = 0.01
    nets_of: str | None = None  # train/val/deploy nets shared with this stage (fine-tuning reuses them)

    @property
    def net_dir(self) -> str:
        """Directory under prototxt/ holding train/val/deploy for this stage."""
        if self.nets_of:
            return STAGE_BY_NAME[self.nets_of].net_dir
        return f"fcn{self.stride}s" if self.data == "white" else f"fcn{self.stride}s_{self.data}"


STAGES = (
    Stage("fcn32s", 32, "white", 1e-8, 50_000, "vgg16", step_at=20_000),
    Stage("fcn16s", 16, "white", 1e-10, 20_000, "fcn32s"),
    Stage("fcn8s", 8, "white", 1e-10, 20_000, "fcn16s"),
    Stage("fcn8s_composite", 8, "composite", 1e-10, 10_000, "fcn8s"),
    Stage("fcn8s_finetune", 8, "composite", 1e-10, 20_000, "fcn8s_composite", nets_of="fcn8s_composite"),
)
STAGE_BY_NAME = {s.name: s for s in STAGES}
FINAL_WHITE = "fcn8s"               # the study's white-background result
FINAL_COMPOSITE = "fcn8s_finetune"  # the study's final model (composites, fine-tuned)

# The embedded sample dataset `make demo` trains on (fcnkit.prep.sample): this many white-background
# photos and as many composites.
SAMPLE_IMAGES = 600


@dataclass(frozen=True)
class Variant:
    """The paper's full-size nets, or the tiny CPU stand-in."""

    name: str  # "" (paper) or "tiny"
    width: float
    batch_size: int
    val_images: int  # one validation pass scores this many images (batch 1)
    iter_scale: float
    solver_mode: str
    # The tiny nets train from scratch (no ImageNet weights at 1/16 width), where plain SGD at the
    # paper's rates does not move: they use Adam at a fixed rate instead. None = the paper's SGD schedule.
    adam_lr: float | None = None
    # Snapshot (and score) every this many iterations; None: the FCN reference's interval times iter_scale.
    snapshot_every: int | None = None
    description: str = ""

    def path(self, kind: str, *parts: str) -> str:
        """kind/[name/]parts: e.g. prototxt/tiny/fcn8s/deploy.prototxt."""
        return "/".join([kind, *([self.name] if self.name else []), *parts])

    @property
    def pretrained(self) -> bool:
        """Whether the chain starts from VGG-16 ImageNet weights (only the full-width trunk has them)."""
        return self.width == 1.0


PAPER_VARIANT = Variant("", 1.0, BATCH_SIZE, round(DATASET_SIZE * VAL_FRACTION), 1.0, "GPU",
                        description="the paper's VGG-16 FCN")
TINY_VARIANT = Variant("tiny", 1 / 16, 10, round(SAMPLE_IMAGES * VAL_FRACTION), 0.002, "CPU", adam_lr=2e-3,
                       snapshot_every=50,
                       description="1/16-width CPU stand-in (same topology; not the paper's net)")
VARIANTS = (PAPER_VARIANT, TINY_VARIANT)
VARIANT_BY_NAME = {v.name: v for v in VARIANTS}
