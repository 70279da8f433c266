# rewardcond: OpenAI's TL;DR "learning to summarize from human feedback", by reward conditioning.
# `snakemake --cores 8` runs the real experiment (workflow/config/config.yaml);
# `snakemake --cores 2 --configfile workflow/config/demo.yaml` runs the offline synthetic demo.
from snakemake.utils import min_version

min_version("9.0")


configfile: "workflow/config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base_model.smk"
include: "workflow/rules/hub_models.smk"
include: "workflow/rules/reward_model.smk"
include: "workflow/rules/trainset.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/rounds.smk"
include: "workflow/rules/generate_summaries.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/kl.smk"
include: "workflow/rules/judges.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
