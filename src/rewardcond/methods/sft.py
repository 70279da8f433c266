"""`sft`: the paper's supervised baseline, a plain causal LM fine-tuned on reference summaries."""

from rewardcond.methods.base import Method, register


@register
class SFTMethod(Method):
    """Unconditioned fine-tuning on the human-written references of the train posts."""

    name = "sft"
    sources = ("reference",)
    learns_from_scores = False
