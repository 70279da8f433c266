"""Rule prepare: validate the raw files into data/prepared/<source>/ tables and a report."""

from pathlib import Path

from rewardcond.artifacts import log_to_file
from rewardcond.data.prepare import prepare

log_to_file(snakemake.log[0])
prepare(
    Path(snakemake.input.manifest).parent,
    Path(snakemake.output.report).parent,
    on_bad_record=snakemake.params.on_bad_record,
    lone_surrogates=snakemake.params.lone_surrogates,
)
