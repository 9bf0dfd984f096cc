"""Benchmark (being written; see issue 5)."""

from __future__ import annotations

from bench.common import BenchEnvironment, Verdict


def run(environment: BenchEnvironment) -> list[Verdict]:
    raise NotImplementedError("being written")
