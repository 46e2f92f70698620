"""One kernel cache for the whole CLI test session (a temporary one unless GRAPHC_CACHE_DIR is set)."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def graphc_cache_dir(tmp_path_factory):
    """GRAPHC_CACHE_DIR for this process and the subprocesses it starts; left alone when already set."""
    from graphc.config import settings
    if os.environ.get("GRAPHC_CACHE_DIR"):
        yield os.environ["GRAPHC_CACHE_DIR"]
        return
    path = str(tmp_path_factory.mktemp("graphc-cache"))
    os.environ["GRAPHC_CACHE_DIR"] = path
    saved = settings.cache_dir
    settings.cache_dir = path
    try:
        yield path
    finally:
        settings.cache_dir = saved
        os.environ.pop("GRAPHC_CACHE_DIR", None)
