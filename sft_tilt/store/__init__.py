"""Stored results: content keys, code keys from the import graph, and checksummed, pickle-free cache entries.

Every room of the toolkit (``theory``, ``sims``, ``figures``, ``claims``) stores what it computes here:

* :func:`content_key` hashes a canonical JSON encoding of the key material (configuration, code key, library
  versions), so a changed input misses the cache instead of reading a stale entry;
* :func:`code_key` hashes the source of the named modules *and every repository module they import*
  (found statically from the import graph), so editing a report or a figure does not recompute a result
  that does not depend on it;
* :func:`cached` memoises a computation on disk in a format that cannot execute code (JSON, or ``.npz`` with
  ``allow_pickle=False`` when arrays are present) with the key and a SHA-256 checksum of the content inside
  each entry; an entry that fails to parse or verify is reported by path, discarded and recomputed;
* :func:`write_record` / :func:`read_record` do the same for single files (run results, checkpoints).

The root is ``$SFT_CACHE_DIR`` if set, else the user's cache folder (``platformdirs.user_cache_dir("sft-tilt")``),
in a checkout as in an installed package, never site-packages (:mod:`sft_tilt.store._locations` says where
everything else goes). Files are written through a temporary file and an atomic rename, with the permissions the
process umask allows.
"""

from sft_tilt.store._locations import *  # noqa: F401,F403
from sft_tilt.store._keys import *  # noqa: F401,F403
from sft_tilt.store._code import *  # noqa: F401,F403
from sft_tilt.store._records import *  # noqa: F401,F403
