"""Hub models: the local cache first, then the network once with a time-out (issue 20).

Each load runs in a fresh process, so that HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE are read at
import as in use. The hub is never reached: its endpoint is a loopback server that records what it
is asked, or a closed loopback port (the network unreachable).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from hub_cache import cache_tiny_reward_model, closed_port, recording_endpoint

from rewardcond import DEMO_COMMAND
from rewardcond.artifacts import sha256_file
from rewardcond.hub import (
    MANIFEST,
    HubModelUnavailableError,
    local_snapshot,
    materialise_hub_model,
    open_hub_model,
)
from rewardcond.reward_models.scoring import load_scorer

ROOT = Path(__file__).resolve().parents[1]
HUB_ID = "OpenAssistant/reward-model-deberta-v3-large-v2"
REVISION = "c355404efa9ad2ad069f3a197cae0523c14244fc"
TEMPLATE = "SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
POST = {"subreddit": "pets", "title": "my dog", "post": "my dog is sick."}

LOAD = f"""
import sys, time
# transformers' import time is not the load's
from rewardcond.reward_models.scoring import load_scorer
start = time.perf_counter()
try:
    scorer = load_scorer(kind="pretrained", path_or_hub_id=sys.argv[1], revision=sys.argv[2],
                         template={TEMPLATE!r}, device="cpu", progress=False)
except Exception as error:
    print(f"{{time.perf_counter() - start:.3f}}")
    print(f"{{type(error).__name__}}: {{error}}")
    sys.exit(0)
print(f"{{time.perf_counter() - start:.3f}}")
print(scorer.identity)
print(float(scorer.score([{POST!r}], [" sick dog"])[0]))
"""


def run_load(tmp_path, path_or_hub_id, revision, **env_vars):
    """(seconds, second line, rest) printed by a fresh process that loads the reward model."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env |= {"HF_HOME": str(tmp_path / "hf"), **env_vars}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(path_or_hub_id), revision],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    seconds, line, *rest = result.stdout.strip().split("\n")
    return float(seconds), line, rest


@pytest.fixture
def cached_reward_model(tmp_path):
    return cache_tiny_reward_model(tmp_path / "hf" / "hub", HUB_ID, REVISION)


def test_cached_reward_model_loads_in_under_a_second_without_asking_the_hub(
    tmp_path, cached_reward_model
):
    # No HF_HUB_OFFLINE: only the cache-first order keeps the load off the network. (Before, the
    # loader asked the hub for every file; with no DNS it waited 139 s before loading.)
    with recording_endpoint() as (endpoint, requests):
        seconds, identity, rest = run_load(tmp_path, HUB_ID, REVISION, HF_ENDPOINT=endpoint)
    print(f"\ncached pretrained reward model loaded in {seconds:.3f} s, {len(requests)} requests")
    assert requests == []
    assert identity == f"{HUB_ID}@{REVISION}"
    assert seconds < 1.0
    assert len(rest) == 1 and np.isfinite(float(rest[0]))  # it scores


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """In this process: the hub client's cache under tmp_path, and its endpoint and offline mode
    as the test sets them (read at import, so set on the constants)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def configure(endpoint, offline=False):
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)

    return configure


def test_uncached_reward_model_fails_fast_naming_model_revision_and_what_to_do(tmp_path, hub):
    endpoint = f"http://127.0.0.1:{closed_port()}"  # the network unreachable
    hub(endpoint)
    start = time.perf_counter()
    with pytest.raises(HubModelUnavailableError) as error:
        load_scorer(kind="pretrained", path_or_hub_id=HUB_ID, revision=REVISION,
                    template=TEMPLATE, device="cpu")  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"\nuncached reward model failed after {seconds:.3f} s: {error.value}")
    assert seconds < 5
    message = str(error.value)
    assert message.startswith(
        f"could not load the pretrained reward model {HUB_ID}@{REVISION}: it is not in the cache "
        f"{tmp_path / 'hf' / 'hub'} and asking the hub {endpoint} failed (ConnectError: "
    )
    assert f"`hf download {HUB_ID} --revision {REVISION}`" in message
    assert message.endswith(f"run the offline demo instead: {DEMO_COMMAND}")


def test_offline_mode_fails_at_once_without_a_request(tmp_path, hub):
    with recording_endpoint() as (endpoint, requests):
        hub(endpoint, offline=True)
        with pytest.raises(HubModelUnavailableError) as error:
            load_scorer(kind="pretrained", path_or_hub_id=HUB_ID, revision=REVISION,
                        template=TEMPLATE, device="cpu")  # fmt: skip
    assert requests == []
    assert str(error.value).startswith(
        f"could not load the pretrained reward model {HUB_ID}@{REVISION}: it is not in the cache "
        f"{tmp_path / 'hf' / 'hub'} and HF_HUB_OFFLINE is set. "
    )


def test_download_hub_model_works_offline_from_the_cache_and_its_folder_needs_no_cache(
    tmp_path, hub, cached_reward_model
):
    # The rule's code as an end-to-end rehearsal runs it: HF_HUB_OFFLINE=1, the model cached.
    folder = tmp_path / "data" / "hub_models" / "rm"
    with recording_endpoint() as (endpoint, requests):
        hub(endpoint, offline=True)
        manifest = materialise_hub_model(HUB_ID, REVISION, folder, what="hub model rm")
    assert requests == []
    assert json.loads((folder / MANIFEST).read_text()) == json.loads(json.dumps(manifest))
    cached = {p.name: sha256_file(p) for p in cached_reward_model.iterdir()}
    assert {name: entry["sha256"] for name, entry in manifest["files"].items()} == cached
    assert (manifest["hub_id"], manifest["revision"]) == (HUB_ID, REVISION)
    assert manifest["identity"] == f"{HUB_ID}@{REVISION}"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*cached, MANIFEST])

    # A job loads the folder from disk only: with the cache gone and no network, the identity
    # recorded in its outputs is still hub_id@revision.
    shutil.rmtree(tmp_path / "hf")
    hub(f"http://127.0.0.1:{closed_port()}")
    scorer = load_scorer(kind="pretrained", path_or_hub_id=folder, revision=REVISION,
                         template=TEMPLATE, device="cpu", progress=False)  # fmt: skip
    assert scorer.identity == f"{HUB_ID}@{REVISION}"
    assert np.isfinite(scorer.score([POST], [" sick dog"])).all()
    # A folder of another revision is stale: rerun the rule, never score with the wrong model.
    with pytest.raises(ValueError, match=r"holds .*@c355404e.*, not revision 0000.*download_hub_m"):
        open_hub_model(folder, "0" * 40)


def test_download_hub_model_refuses_a_snapshot_without_weights(tmp_path, hub, cached_reward_model):
    (cached_reward_model / "model.safetensors").unlink()
    hub(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(HubModelUnavailableError, match="has no config.json or no PyTorch weights"):
        materialise_hub_model(HUB_ID, REVISION, tmp_path / "rm")
    assert not (tmp_path / "rm").exists()


def test_a_hub_model_needs_a_pinned_revision():
    with pytest.raises(ValueError, match="model 'org/model': pin a revision"):
        open_hub_model("org/model", None)


def test_a_hub_that_never_answers_is_given_up_after_the_time_out(hub, monkeypatch):
    # A name lookup or proxy that hangs: the request itself never returns.
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: time.sleep(30))
    hub("http://hub.invalid")
    start = time.perf_counter()
    with pytest.raises(HubModelUnavailableError, match=r"failed \(no answer within 0\.5 s\)"):
        local_snapshot(HUB_ID, REVISION, what="judge", timeout_s=0.5)
    assert time.perf_counter() - start < 2
