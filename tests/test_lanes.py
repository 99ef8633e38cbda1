"""Lanes (#29): threads that each read a batch and run the network on it, handed over in batch order.

``lane_batches`` must give every batch once, in order, with its own work's result, however the threads finish;
run several at once (the work of two batches overlaps in time); stop cleanly when the consumer gives up.
``plan_loading`` picks lanes for ``--workers auto`` on a multi-core CPU only; ``LayerCapture`` keeps each
thread's pass apart, so two threads capturing through one model get their own outputs.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

from unitscope.capture import LayerCapture
from unitscope.data.probe import ConceptTable, ProbeSample
from unitscope.dissection import loader
from unitscope.dissection.loader import LoadedBatch, lane_batches, plan_loading


class _Numbers:
    """A probe set of ``n`` 1-pixel images whose value is their index."""

    concepts = ConceptTable((), ())
    image_size = label_size = (1, 1)
    name = "numbers"

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> ProbeSample:
        import numpy as np

        return ProbeSample(index=i, image=np.full((1, 1, 3), i, dtype=np.uint8), pixel_labels={}, image_labels={})


def test_batches_come_in_order_with_their_own_results_though_lanes_finish_out_of_order() -> None:
    threads: set[str] = set()
    running, most = [0], [0]
    lock = threading.Lock()

    def work(batch: LoadedBatch) -> list[int]:
        with lock:
            threads.add(threading.current_thread().name)
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05 if batch.indices[0] % 2 == 0 else 0.001)  # even batches finish after the next one
        with lock:
            running[0] -= 1
        return [int(s.image[0, 0, 0]) for s in batch.samples if s is not None]

    got = list(lane_batches(_Numbers(23), 2, 5, 2, work))  # type: ignore[arg-type]
    assert [b.indices for b, _ in got] == [list(range(s, min(s + 5, 23))) for s in range(2, 23, 5)]
    assert all(values == b.indices for b, values in got)  # each result is its own batch's
    assert most[0] == 2 and len(threads) == 2  # two batches in the work at once, on two threads


def test_a_consumer_that_stops_early_leaves_no_thread_running() -> None:
    started: list[int] = []
    batches = lane_batches(_Numbers(100), 0, 1, 2, lambda b: started.append(b.indices[0]))  # type: ignore[arg-type]
    next(batches)
    batches.close()  # the engine raised: the pool is shut down, queued batches dropped
    assert len(started) <= 4
    assert not [t for t in threading.enumerate() if t.name.startswith("unitscope-lane")]


def test_auto_runs_lanes_on_a_multicore_cpu_and_worker_processes_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    assert plan_loading("auto", "cpu", cores=2) == loader.Loading(0, 2, 1)
    assert plan_loading("auto", "cpu", cores=16) == loader.Loading(0, 4, 4)
    assert plan_loading("auto", "cpu", cores=1) == loader.Loading(0, 1, 1)
    assert plan_loading("auto", "cuda", cores=16) == loader.Loading(4, 1, 12)  # the GPU runs the network
    assert plan_loading(2, "cpu", cores=2) == loader.Loading(2, 1, 1)  # an explicit count is processes
    assert plan_loading("auto", "cpu", cores=2, ranks=2) == loader.Loading(1, 1, 1)  # torchrun: as before
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert plan_loading("auto", "cpu", cores=2) == loader.Loading(0, 2, None)  # the user's threads win


def test_two_threads_capturing_through_one_model_get_their_own_outputs() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 1)).eval()
    inputs = [torch.full((1, 1, 3, 3), float(k)) for k in range(8)]
    expected = [net[:2](x) for x in inputs]
    got: dict[int, torch.Tensor] = {}
    with LayerCapture(net, ["1"]) as capture:
        def lane(ks: range) -> None:
            for k in ks:
                got[k] = capture.run(inputs[k])["1"]

        threads = [threading.Thread(target=lane, args=(range(j, 8, 2),)) for j in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(torch.equal(got[k], expected[k]) for k in range(8))
