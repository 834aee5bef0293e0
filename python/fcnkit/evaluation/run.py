"""The evaluation run: every method on every image, per-image and dataset metrics.

Methods are Predictors (fcnkit.inference: a model on a backend), optionally ExtractNet's classical
baseline, and every method again after ExtractNet's post-processing. Pairs of predictors of the same model
are compared per image (pixels whose mask differs, max |score difference|): Caffe against PyTorch
("disagreement"), and PyTorch fp32 against the same net in bf16/fp16 ("precision").
"""

from __future__ import annotations

import json

import numpy as np
from tqdm import tqdm

from fcnkit import inference
from fcnkit.data.datasets import Sample, load_samples
from fcnkit.errors import UserError
from fcnkit.evaluation.baselines import extractnet_baseline
from fcnkit.evaluation.metrics import aggregate, image_scores
from fcnkit.evaluation.report import format_text, to_json, write_report
from fcnkit.inference.backends import check_precision
from fcnkit.inference.postprocess import postprocess_extractnet
from fcnkit.inference.predict import to_mask
from fcnkit.io.atomic import ensure_writable, write_text_atomic


def run_evaluation(samples: list[Sample], predictors: list, *, baseline: bool = False,
                   postprocess: str | None = None, keep_predictions: bool = False) -> dict:
    """Per-image and dataset metrics for every method; Caffe-vs-torch disagreement when both ran.

    Methods are named after the predictors' backends ("caffe", "torch")."""
    methods = [p.name for p in predictors] + (["baseline"] if baseline else [])
    if postprocess == "extractnet":
        methods += [f"{m}+pp" for m in methods]
    per: dict[str, list[dict]] = {m: [] for m in methods}
    preds: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    pairs = [(a, b) for a, b in (("caffe", "torch"), *(("torch", m) for m in methods if m.startswith("torch-")))
             if a in methods and b in methods]
    compared: dict[tuple[str, str], list[dict]] = {pair: [] for pair in pairs}
    for s in tqdm(samples, desc="evaluate", unit="img", disable=None, leave=False):
        masks, raw = {}, {}
        for p in predictors:
            raw[p.name] = p.scores(s.bgr)
            masks[p.name] = to_mask(p.logit_from_scores(raw[p.name]))
        if baseline:
            masks["baseline"] = extractnet_baseline(s.bgr)
        if postprocess == "extractnet":
            for m in list(masks):
                masks[f"{m}+pp"] = postprocess_extractnet(masks[m])
        for m in methods:
            r = image_scores(s.label, masks[m])
            r["name"] = s.name
            per[m].append(r)
            if keep_predictions:
                preds[m].append(masks[m])
        for a, b in pairs:
            compared[a, b].append({"name": s.name, "pixels": int(np.count_nonzero(masks[a] != masks[b])),
                                   "max_abs_score_diff": float(np.abs(raw[a] - raw[b]).max()),
                                   "total": int(s.label.size)})
    summary = {m: aggregate(per[m]) for m in methods}
    result = {"methods": methods, "per_image": per, "summary": summary,
              "disagreement": compared.get(("caffe", "torch"), []),
              "precision": [{"reference": a, "method": b, "images": compared[a, b],
                             "iou_change": float(summary[b]["iou"][1] - summary[a]["iou"][1]),
                             "mean_iou_change": float(summary[b]["mean_iou"] - summary[a]["mean_iou"])}
                            for a, b in pairs if a == "torch"]}
    if keep_predictions:
        result["predictions"] = preds
    return result


def evaluate_dataset(data, model=None, *, backends=("caffe", "torch"), split: str = "val", masks=None,
                     limit: int | None = None, device: str = "cpu", precision: str = "fp32", deploy=None,
                     caffemodel=None, baseline: bool = False, postprocess: str | None = None, report_dir=None,
                     json_path=None, log=print) -> dict:
    """Load the data and the model (one predictor per backend), run, log the table, write JSON/report.

    `backends=()` evaluates the classical baseline alone. With `precision` other than fp32 the PyTorch
    backend runs twice, in fp32 and in that precision, and the agreement of the two is reported (Caffe,
    if asked for, stays fp32). Returns the run's result dict."""
    check_precision(precision, device)
    if precision != "fp32":
        if "torch" not in backends:
            raise UserError(f"--precision {precision} applies to the PyTorch backend; use --backend torch or both")
        backends = [(b, "fp32") for b in backends] + [("torch", precision)]
    if json_path:
        ensure_writable(json_path, flag="--json")  # before the work, not after it
    if report_dir is not None:
        ensure_writable(report_dir, folder=True, flag="--report")
    samples = load_samples(data, split=split, masks=masks, limit=limit)
    predictors = []
    if backends:
        predictors = inference.load_many(model, backends, device=device, precision=precision, deploy=deploy,
                                         caffemodel=caffemodel, log=lambda n: log(f"evaluate: {n}"))
    result = run_evaluation(samples, predictors, baseline=baseline, postprocess=postprocess,
                            keep_predictions=report_dir is not None)
    log(f"evaluate: {len(samples)} images from {data}")
    log(format_text(result))
    if json_path:
        write_text_atomic(json_path, json.dumps(to_json(result), indent=1) + "\n")
        log(f"evaluate: wrote {json_path}")
    if report_dir is not None:
        path = write_report(report_dir, result, samples, data=str(data),
                            model=predictors[0].label if predictors else None)
        log(f"evaluate: report {path}")
        result["report"] = path
    return result
