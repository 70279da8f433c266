"""Batch planning, shard arithmetic and checkpoint discovery of rewardcond.distributed."""

import numpy as np
import pandas as pd
import pytest

from rewardcond.distributed import (
    BatchPlan,
    batch_aligned_rows,
    last_checkpoint,
    merge_shards,
    parse_shard,
    plan_batches,
    shard_bounds,
    shard_device,
    take_shard,
)


@pytest.mark.parametrize(
    ("global_batch", "processes", "max_per_device", "expected"),
    [
        (64, 1, 64, (64, 1)),
        (64, 8, 8, (8, 1)),
        (64, 4, 8, (8, 2)),
        (64, 1, 6, (4, 16)),  # 6 does not divide 64: the largest divisor below it
        (12, 2, 4, (3, 2)),
        (7, 1, 1, (1, 7)),
    ],
)
def test_plan_batches_auto_accumulation(global_batch, processes, max_per_device, expected):
    plan = plan_batches(
        global_batch, num_processes=processes, max_per_device_batch_size=max_per_device
    )
    assert (plan.per_device_batch_size, plan.gradient_accumulation_steps) == expected
    assert plan.per_device_batch_size * plan.gradient_accumulation_steps * processes == (
        global_batch
    )


def test_plan_batches_same_global_batch_for_any_number_of_gpus():
    plans = [plan_batches(32, num_processes=n, max_per_device_batch_size=4) for n in (1, 2, 4, 8)]
    assert [(p.per_device_batch_size, p.gradient_accumulation_steps) for p in plans] == [
        (4, 8),
        (4, 4),
        (4, 2),
        (4, 1),
    ]
    assert str(plans[1]) == "global batch 32 = 4 per device x 4 accumulation x 2 processes"


def test_plan_batches_fixed_accumulation():
    plan = plan_batches(
        32, num_processes=2, max_per_device_batch_size=16, gradient_accumulation_steps=4
    )
    assert plan == BatchPlan(32, 4, 4, 2)


def test_global_batch_that_does_not_divide_names_the_key():
    with pytest.raises(ValueError, match=r"train\.global_batch_size=30 does not divide over 4"):
        plan_batches(30, num_processes=4, max_per_device_batch_size=8)


def test_fixed_accumulation_errors_name_the_key():
    with pytest.raises(ValueError, match=r"train\.gradient_accumulation_steps=3 does not divide"):
        plan_batches(
            32, num_processes=2, max_per_device_batch_size=16, gradient_accumulation_steps=3
        )
    with pytest.raises(
        ValueError, match=r"leaves 16 examples per device .* train\.per_device_batch_size=8;"
    ):
        plan_batches(
            32, num_processes=2, max_per_device_batch_size=8, gradient_accumulation_steps=1
        )


@pytest.mark.parametrize("bad", [0, -4])
def test_non_positive_sizes_are_rejected(bad):
    with pytest.raises(ValueError, match=r"train\.global_batch_size must be >= 1"):
        plan_batches(bad, num_processes=1, max_per_device_batch_size=1)


def test_parse_shard():
    assert parse_shard("1-of-4") == (0, 4)
    assert parse_shard("results/x/shards/completions.4-of-4.parquet") == (3, 4)
    for bad in ("0-of-4", "5-of-4", "shard3", "11of2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


@pytest.mark.parametrize(("n_rows", "count"), [(10, 3), (3, 5), (0, 2), (8, 8), (1000, 7)])
def test_shards_cover_every_row_once_in_order(n_rows, count):
    bounds = [shard_bounds(n_rows, index, count) for index in range(count)]
    rows = [row for start, stop in bounds for row in range(start, stop)]
    assert rows == list(range(n_rows))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_merge_shards_restores_the_input(tmp_path):
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(11)], "x": [float(i) for i in range(11)]})
    paths = []
    for number in (3, 1, 2):  # given out of order on purpose
        path = tmp_path / f"part.{number}-of-3.parquet"
        take_shard(frame, f"{number}-of-3").to_parquet(path, index=False)
        paths.append(path)
    merged = merge_shards(paths, tmp_path / "merged.parquet")
    pd.testing.assert_frame_equal(merged, frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "merged.parquet"), frame)


def test_merge_shards_regroups_blocks_per_group(tmp_path):
    # One job writes pass by pass (target, sample), each pass over every prompt in order.
    prompts = [f"p{i}" for i in range(5)]
    passes = [("q05", 0), ("q95", 0), ("q05", 1)]
    single = pd.DataFrame(
        [{"target_name": t, "sample": s, "post_id": p} for t, s in passes for p in prompts]
    )
    paths = []
    for number in (1, 2):
        start, stop = shard_bounds(len(prompts), number - 1, 2)
        shard = pd.DataFrame(
            [
                {"target_name": t, "sample": s, "post_id": p}
                for t, s in passes
                for p in prompts[start:stop]
            ]
        )
        paths.append(tmp_path / f"g.{number}-of-2.parquet")
        shard.to_parquet(paths[-1], index=False)
    merged = merge_shards(paths, tmp_path / "m.parquet", group_by=["target_name", "sample"])
    pd.testing.assert_frame_equal(merged, single)


def test_merge_shards_refuses_an_incomplete_set(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    for number in (1, 3):
        take_shard(frame, f"{number}-of-3").to_parquet(tmp_path / f"p.{number}-of-3.parquet")
    paths = sorted(tmp_path.glob("p.*"))
    with pytest.raises(ValueError, match="missing shard"):
        merge_shards(paths, tmp_path / "merged.parquet")
    assert not (tmp_path / "merged.parquet").exists()


def test_last_checkpoint_skips_a_checkpoint_whose_save_was_interrupted(tmp_path):
    assert last_checkpoint(tmp_path / "absent") is None
    assert last_checkpoint(tmp_path) is None
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-12").mkdir()  # killed while saving: no trainer_state.json
    (tmp_path / "checkpoint-99.tmp").mkdir()
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


def test_shard_device_spreads_shards_over_visible_gpus(monkeypatch):
    import torch

    assert shard_device("cpu", "3-of-4") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [shard_device("auto", f"{i}-of-8") for i in (1, 4, 5, 8)] == [
        "cuda:0",
        "cuda:3",
        "cuda:0",
        "cuda:3",
    ]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert shard_device("cuda", "2-of-2") == "cuda"


def _batches(rows, lengths, batch_size):
    """The batches `rewardcond.decoding.complete` forms over `rows` (stable sort by length)."""
    order = sorted(rows, key=lambda i: lengths[i])
    return [tuple(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_batch_aligned_shards_form_the_single_jobs_batches(count):
    """1,000 prompts of 5-60 tokens (many ties) in batches of 16: the shards partition the rows,
    and batching each shard's rows as `complete` does gives exactly the single job's batches
    (contiguous blocks of rows, the former sharding, do not)."""
    lengths = np.random.default_rng(0).integers(5, 60, 1000).tolist()
    single = _batches(range(1000), lengths, 16)
    shards = [batch_aligned_rows(lengths, 16, index, count) for index in range(count)]
    assert sorted(row for rows in shards for row in rows) == list(range(1000))
    assert all(rows == sorted(rows) for rows in shards)
    assert [b for rows in shards for b in _batches(rows, lengths, 16)] == single
    if count > 1:
        blocks = [range(*shard_bounds(1000, index, count)) for index in range(count)]
        assert [b for rows in blocks for b in _batches(rows, lengths, 16)] != single
