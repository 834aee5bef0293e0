"""`fcnkit models [--json]`: the registered models, what they take, what they give, where their weights are."""

from __future__ import annotations

import json

from fcnkit import models
from fcnkit.cli import Parser
from fcnkit.errors import UserError, cli_entry


def describe(spec) -> dict:
    weights = spec.find_weights()
    return {"name": spec.name, "family": spec.family, "framework": spec.framework,
            "description": spec.description, "input": spec.preprocessing.describe(),
            "output": {"softmax2": "2-class scores (argmax; object = class 1)",
                       "sigmoid1": "1-channel logit (sigmoid)"}[spec.output],
            "supervision": spec.supervision, "trained_on": spec.trained_on, "weights_from": spec.weights,
            "weights": str(weights) if weights else None,
            "train": spec.how_to_train()}


@cli_entry("models")
def main(argv=None) -> int:
    p = Parser(prog="fcnkit models", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--family", help="only this family")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    a = p.parse_args(argv)

    families = sorted({s.family for s in models.registered().values()})
    if a.family is not None and a.family not in families:
        raise UserError(f"--family {a.family!r} is not a family; choose one of {', '.join(families)}")
    rows = [describe(s) for s in models.registered().values() if a.family in (None, s.family)]
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        have = f"trained: {r['weights']}" if r["weights"] else f"not trained yet: `{r['train']}`"
        print(f"{r['name']}  ({r['family']}, {r['framework']}) {r['description']}\n"
              f"    input: {r['input']}\n    output: {r['output']}\n"
              f"    trained on: {r['trained_on']} ({r['supervision']})\n"
              f"    weights: {r['weights_from']}; {have}")
    print(f"{len(rows)} models")
    return 0
