from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.harness.local import LocalCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path)
    try:
        yield c
    finally:
        c.down()


@pytest.fixture
def running(cluster: LocalCluster) -> LocalCluster:
    proc = cluster.up()
    assert proc.returncode == 0, proc.stderr
    return cluster
