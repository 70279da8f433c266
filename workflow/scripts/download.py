"""Rule download: fetch OpenAI's TL;DR feedback files into data/raw/openai/."""

import sys
from pathlib import Path

from rewardcond.artifacts import log_to_file
from rewardcond.data.download import DownloadError, download_files

log_to_file(snakemake.log[0])
try:
    download_files(
        snakemake.params.base_url,
        snakemake.params.files,
        Path(snakemake.output[0]).parent,
        sha256=snakemake.params.sha256,
        timeout=snakemake.params.timeout,
        retries=snakemake.params.retries,
        backoff=snakemake.params.backoff,
    )
except DownloadError as error:
    print(f"\nrule download failed: {error}\n", file=sys.__stderr__)  # not only in the log
    raise
