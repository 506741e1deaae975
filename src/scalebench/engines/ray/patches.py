"""Every place the Ray engine reaches into private internals (Ray 2.60.0, joblib 1.6.0).

Each was checked against the installed Ray 2.60.0: none has a public API that does the job. The
environment variables that Ray documents for these settings are read once, when the module that
caches them is imported, which happens when ``import ray`` runs, before any engine can set them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import ray._private.ray_constants as ray_constants
from ray._private import auto_init_hook


def cluster_flag() -> bool:
    """The driver's ``ray_constants.ENABLE_RAY_CLUSTER`` now (to restore it later)."""
    return ray_constants.ENABLE_RAY_CLUSTER


def set_cluster_flag(value: bool) -> None:
    """Set ``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` in this driver (Ray 2.60.0).

    Ray keeps 127.0.0.1 as the node address only when this is false (see cluster.py); its
    public form, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, is read when ray_constants is
    imported, so it reaches the processes Ray spawns but not this already-importing driver.
    """
    ray_constants.ENABLE_RAY_CLUSTER = value


def disable_auto_connect() -> None:
    """Switch off ``ray._private.auto_init_hook.enable_auto_connect`` (Ray 2.60.0).

    A Ray Data executor collected after shutdown calls ray.init() from __del__ (auto-init): at
    interpreter exit after Ctrl-C that start hung forever, and at any time it would start a
    cluster nobody tracks. Its public form, ``RAY_ENABLE_AUTO_CONNECT=0``, is read at import.
    """
    auto_init_hook.enable_auto_connect = False


def reset_auth_caches() -> None:
    """Make RayConfig and the token loader re-read RAY_AUTH_MODE / RAY_AUTH_TOKEN_PATH (Ray 2.60.0).

    Both cache what they saw at import time, so a per-cluster token set afterwards (or its
    removal at stop) is not seen without this. No public API: Ray's own
    ``authentication_test_utils.reset_auth_token_state`` does exactly these two calls, config
    first (otherwise a draining gRPC thread may reload a token that is gone).
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def joblib_pool_restored() -> Iterator[None]:
    """Undo Ray's patch of joblib's ``PicklingPool.__bases__`` when the block ends (Ray 2.60.0,
    joblib 1.6.0).

    Ray's joblib backend (``RayBackend.configure``, run for every Parallel call) sets
    ``joblib.pool.PicklingPool.__bases__ = (ray.util.multiprocessing.Pool,)`` for good and
    never restores it, so a later multiprocessing joblib call in this process would start a Ray
    cluster of its own. Ray offers no backend without that patch; the alternative, Ray's public
    ``ray.util.multiprocessing.Pool`` used directly, would change the idiom the benchmark
    measures (joblib's ray backend), so the bases are saved and put back instead.
    """
    from joblib.pool import PicklingPool

    bases = PicklingPool.__bases__
    try:
        yield
    finally:
        PicklingPool.__bases__ = bases
