"""ROUGE-1/2/L (F-measure) as a local `evaluate` module, so that it loads offline.

`evaluate.load("rouge")` fetches its script from the Hub at run time; this file is the same metric
on top of `rouge_score`, loaded by path (`rewardcond.evaluation.metrics.load_rouge`). evaluate
scans the import lines of a module for its dependencies, so keep one import per line.
"""

import datasets
import evaluate
import numpy as np
from rouge_score import rouge_scorer

_DESCRIPTION = "ROUGE-1, ROUGE-2 and ROUGE-L F-measures of predictions against references."
_CITATION = "Lin, Chin-Yew. ROUGE: A Package for Automatic Evaluation of Summaries. ACL 2004."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of reference texts, one per prediction.
    rouge_types: which scores to compute (default rouge1, rouge2, rougeL).
    use_stemmer: Porter-stem words before matching (default True).
    use_aggregator: True returns the plain mean F-measure per type; False one per example.
Returns:
    dict mapping each rouge type to a float (aggregated) or a list of floats (per example).
"""


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                }
            ),
        )

    def _compute(
        self,
        predictions,
        references,
        rouge_types=("rouge1", "rouge2", "rougeL"),
        use_stemmer=True,
        use_aggregator=True,
    ):
        scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
        scores = [
            scorer.score(ref, pred) for ref, pred in zip(references, predictions, strict=True)
        ]
        per_example = {key: [score[key].fmeasure for score in scores] for key in rouge_types}
        if use_aggregator:
            # The plain mean: the Hub module's bootstrap median is random and not needed here.
            return {key: float(np.mean(values)) for key, values in per_example.items()}
        return per_example
