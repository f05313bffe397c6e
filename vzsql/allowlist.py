"""Which locations a manifest may make vzsql read: URL rules and an allow-list of prefixes.

A manifest, kerchunk reference set or Icechunk repository made by someone else is a list
of (URL, offset, length) triples; reading it must not let its author make vzsql read
``file:///home/you/.ssh/id_rsa`` or an internal HTTP endpoint. The policy:

1. **URL rules, always**: a source URL must use ``file``, ``s3``, ``gs``, ``az`` or
   ``http(s)`` (and the aliases ``s3a``, ``gcs``, ``abfs``, ``abfss``); it must not contain
   ``..`` path segments (also percent-encoded), NUL bytes or backslashes; a ``file`` URL
   must be absolute and on this host. Anything else is a ``SourceNotAllowedError``.
2. **Prefixes** (``AllowList``), where a manifest has one:
   - a manifest made by ``vzsql.scan`` may read exactly the files it scanned;
   - a manifest opened from disk (``open_manifest(path)``, ``engine="vzsql"``) by default
     may read the sources it records (the issue's "default: the prefixes of the scanned
     sources"), with one guard for local files: a recorded local file outside the folder
     holding the manifest must *look like a data file* (HDF5/netCDF/GRIB signature), so a
     crafted manifest cannot serve ``~/.ssh/id_rsa`` as chunk bytes. HDF5 external raw
     files outside that folder need an explicit ``allow``;
   - with ``allow=[prefixes]`` or the environment variable ``VZSQL_ALLOW``
     (comma-separated; ``*`` allows everything) the list is strict: only those prefixes
     and the manifest's folder; ``allow="recorded"`` confirms every recorded source;
   - references imported from kerchunk files or Icechunk repositories
     (``for_imported_sources``) follow the same default rule, with the folder holding the
     reference file in place of the manifest's folder.
3. Manifests built in the program from tables (``Manifest(tables)``) carry no list: the
   program made them, only the URL rules (and ``VZSQL_ALLOW`` when set) apply.
4. Manifests derived by operations (concat, combine, merge, isel, sel, replace, rechunk,
   ...) keep their inputs' lists (``derived``): a source of the result may be read if an
   input holding that source allowed it; ``rename_sources`` carries each source's
   permission to its new URL (``renamed``). If any input carries no list, neither does the
   result. While an operation runs, the bytes it reads itself (coordinate values) are
   checked against its inputs' lists too (``reading_under`` / ``read_policy``).

A prefix matches a URL equal to it or continuing it at a ``/`` boundary, so
``s3://bucket/data`` allows ``s3://bucket/data/x.nc`` but not ``s3://bucket/data-evil/``.
Enforcement is at the point where bytes are read (``vzsql.byte_ranges``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from vzsql.errors import SourceNotAllowedError

ALLOWED_SCHEMES = frozenset(
    {"file", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "http", "https"}
)
ENV_VAR = "VZSQL_ALLOW"
HINT = f"allow it with open_manifest(..., allow=[prefix]) or the {ENV_VAR} environment variable"


@lru_cache(maxsize=4096)
def check_url(uri: str) -> None:
    """Refuse URLs with odd schemes, ``..`` segments, NUL bytes, or relative/remote file URLs.

    Run before every chunk read: URLs that passed are remembered (a refusal raises, so it
    is never cached and is checked again).
    """
    if "\x00" in uri or "\\" in uri:
        raise SourceNotAllowedError("source URL contains a NUL byte or backslash", source=uri)
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        what = f"scheme {scheme!r}" if scheme else "a relative path (no scheme)"
        raise SourceNotAllowedError(
            f"source URL has {what}; only file, s3, gs, az and http(s) URLs are read",
            source=uri,
        )
    segments = unquote(parsed.path).split("/")
    if ".." in segments:
        raise SourceNotAllowedError("source URL contains a '..' path segment", source=uri)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SourceNotAllowedError("file URL names another host", source=uri)
        if not unquote(parsed.path).startswith("/"):
            raise SourceNotAllowedError("file URL is not absolute", source=uri)


def normalize_prefix(prefix: str | os.PathLike[str]) -> str:
    """A user's prefix as a URL: local paths become absolute ``file://`` URLs."""
    from vzsql.sources import normalize_uri

    text = os.fspath(prefix)
    if text == "*":
        return text
    scheme = urlparse(text).scheme.lower()
    if scheme in ALLOWED_SCHEMES - {"file"}:
        return text
    url = normalize_uri(text)
    return url + "/" if text.endswith(("/", os.sep)) and not url.endswith("/") else url


def _covers(prefix: str, uri: str) -> bool:
    if prefix == "*":
        return True
    if uri == prefix:
        return True
    base = prefix if prefix.endswith("/") else prefix + "/"
    return uri.startswith(base)


def env_prefixes() -> tuple[str, ...]:
    """Prefixes from ``VZSQL_ALLOW`` (comma-separated), normalised."""
    raw = os.environ.get(ENV_VAR, "")
    return tuple(normalize_prefix(p.strip()) for p in raw.split(",") if p.strip())


@dataclass(frozen=True)
class AllowList:
    """URL prefixes a manifest may read, and where the list came from (for messages)."""

    prefixes: tuple[str, ...]
    origin: str = "user"
    # recorded local files not under a prefix, allowed if they look like data files
    data_files: frozenset[str] = frozenset()
    _seen: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, prefixes: Iterable[str | os.PathLike[str]], origin: str = "user") -> AllowList:
        return cls(tuple(normalize_prefix(p) for p in prefixes), origin)

    @classmethod
    def of_sources(cls, sources: Any, origin: str) -> AllowList:
        """Exactly the URIs of a ``sources`` table (what a scan read)."""
        return cls(tuple(sources["uri"].to_pylist()), origin)

    def allows(self, uri: str) -> bool:
        ok = self._seen.get(uri)
        if ok is None:
            ok = covered(self.prefix_set, uri) or (
                uri in self.data_files and looks_like_data_file(uri)
            )
            if len(self._seen) < 100_000:
                self._seen[uri] = ok
        return ok

    @cached_property
    def prefix_set(self) -> frozenset[str]:
        """``prefixes`` as a set, for ``covered`` (built on first use, then kept)."""
        return frozenset(self.prefixes)

    def check(self, uri: str) -> None:
        """Raise ``SourceNotAllowedError`` unless ``uri`` passes the URL rules and a prefix."""
        check_url(uri)
        if not self.allows(uri):
            raise SourceNotAllowedError(
                f"reading this source is not allowed (allowed by {self.origin}: "
                f"{_short(self.prefixes)}); {HINT}",
                source=uri,
            )


def _short(prefixes: Sequence[str]) -> str:
    shown = ", ".join(prefixes[:3])
    return shown + (f" and {len(prefixes) - 3} more" if len(prefixes) > 3 else "") or "nothing"


def check_read(allow: AllowList | None, uri: str) -> None:
    """The check made before every byte-range read (see the module doc for the policy)."""
    if allow is not None:
        allow.check(uri)
        return
    check_url(uri)
    env = env_prefixes()
    if env and not any(_covers(p, uri) for p in env):
        raise SourceNotAllowedError(
            f"reading this source is not allowed ({ENV_VAR}: {_short(env)}); {HINT}", source=uri
        )


def looks_like_data_file(uri: str) -> bool:
    """True when the local file at ``uri`` starts like a format vzsql scans."""
    from vzsql.errors import VzsqlError
    from vzsql.scanners import sniff_format
    from vzsql.sources import local_path

    path = local_path(uri)
    if path is None:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4104)
        return sniff_format(head, uri) in ("hdf5", "netcdf3", "grib")
    except (OSError, VzsqlError):
        return False


def _user_prefixes(
    allow: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
) -> list[str]:
    if allow is None:
        given: list[str | os.PathLike[str]] = []
    elif isinstance(allow, str | os.PathLike):
        given = [allow]
    else:
        given = list(allow)
    return [normalize_prefix(p) for p in given] + list(env_prefixes())


def _default_list(folder: Path, uris: Sequence[str], what: str) -> AllowList:
    """Recorded remote sources, the folder, and recorded local files that look like data."""
    remote = [u for u in uris if urlparse(u).scheme.lower() != "file"]
    local = frozenset(u for u in uris if urlparse(u).scheme.lower() == "file")
    return AllowList(
        (*remote, folder.as_uri() + "/"),
        origin=f"the sources {what} records (local ones outside {folder} must be data files)",
        data_files=local,
    )


def for_opened_manifest(
    path: str | os.PathLike[str],
    allow: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    sources: Any,
) -> AllowList:
    """The allow-list of a manifest opened from ``path`` (see rule 2 of the module doc)."""
    where = Path(path).resolve()
    uris = sources["uri"].to_pylist()
    if allow == "recorded":
        return AllowList.of_sources(sources, origin=f"confirmation of the sources of {where}")
    prefixes = _user_prefixes(allow)
    if not prefixes:
        return _default_list(where.parent, uris, where.name)
    prefixes.append(where.parent.as_uri() + "/")
    return AllowList(tuple(prefixes), origin=f"allow=, {ENV_VAR} and the folder of {where.name}")


def for_imported_sources(
    reference: str | os.PathLike[str],
    uris: Sequence[str],
    allow: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> AllowList:
    """The allow-list of references imported from ``reference`` (kerchunk, Icechunk).

    Every URL must pass the URL rules now; with no ``allow``/``VZSQL_ALLOW`` the default
    rule of opened manifests applies, else the given prefixes (and the reference's folder).
    """
    for uri in uris:
        check_url(uri)
    text = os.fspath(reference)
    local = urlparse(text).scheme in ("", "file")
    folder = Path(text).resolve().parent if local else Path("/nonexistent-remote-reference")
    prefixes = _user_prefixes(allow)
    if not prefixes:
        return _default_list(folder, uris, Path(text).name)
    if local:
        prefixes.append(folder.as_uri() + "/")
    return AllowList(tuple(prefixes), origin=f"allow=, {ENV_VAR} and the folder of {text}")


def check_imported_sources(
    uris: Sequence[str],
    allow: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    reference: str | os.PathLike[str] = "/nonexistent-reference",
) -> AllowList:
    """Check every imported URL now (not only when read); return the import's allow-list."""
    policy = for_imported_sources(reference, uris, allow)
    for uri in uris:
        policy.check(uri)
    return policy


# -- manifests derived by operations (rule 4) --------------------------------------------------
def covered(prefixes: frozenset[str], uri: str) -> bool:
    """``any(_covers(p, uri) for p in prefixes)`` by looking up ``uri``'s own prefixes.

    A prefix covers ``uri`` when it equals it or a part of it ending just before or just
    after a ``/``; checking those few parts makes a list of many exact URLs (what a scan
    read) cost the same per lookup as a list of one folder.
    """
    if "*" in prefixes or uri in prefixes:
        return True
    i = uri.find("/")
    while i != -1:
        if uri[:i] in prefixes or uri[: i + 1] in prefixes:
            return True
        i = uri.find("/", i + 1)
    return False


def _transfer(moves: Iterable[tuple[AllowList, str, str]], origin: str) -> AllowList:
    """An ``AllowList`` allowing each ``new`` URL whose ``old`` URL its list allowed (or,
    when renamed, whose new URL its prefixes cover).

    No I/O: URLs covered by a prefix become exact entries; recorded local files still to be
    sniffed (``data_files``) stay that way when they remain local.
    """
    exact: set[str] = set()
    data: set[str] = set()
    for allow, old, new in moves:
        prefixes = allow.prefix_set
        if covered(prefixes, old) or (new != old and covered(prefixes, new)):
            exact.add(new)
        elif old in allow.data_files:
            (data if urlparse(new).scheme.lower() == "file" else exact).add(new)
    return AllowList(tuple(sorted(exact)), origin=origin, data_files=frozenset(data))


def derived(
    inputs: Sequence[tuple[AllowList | None, Sequence[str]]], uris: Iterable[str]
) -> AllowList | None:
    """The allow-list of a manifest with sources ``uris`` derived from ``inputs``.

    ``inputs`` are (allow-list, source URIs) of the manifests the operation read. A URL is
    allowed when an input holding it allowed it (a list never grows to cover another
    input's sources); None when any input has no list (built in the program).
    """
    if any(allow is None for allow, _ in inputs):
        return None
    holders: dict[str, list[AllowList]] = {}
    for allow, input_uris in inputs:
        for u in input_uris:
            holders.setdefault(u, []).append(allow)  # type: ignore[arg-type]
    origins = {
        o
        for allow, _ in inputs
        if allow is not None
        for o in allow.origin.removeprefix(_DERIVED).split("; ")
    }
    return _transfer(
        ((a, u, u) for u in uris for a in holders.get(u, ())),
        origin=_DERIVED + "; ".join(sorted(origins)),
    )


_DERIVED = "the manifests it was derived from: "


def renamed(allow: AllowList | None, moves: Iterable[tuple[str, str]]) -> AllowList | None:
    """The allow-list after ``rename_sources``: a new URL is allowed if its old one was (the
    files moved) or the list's prefixes cover it."""
    if allow is None:
        return None
    return _transfer(
        ((allow, old, new) for old, new in moves),
        origin=f"the sources of the manifest before rename_sources ({allow.origin})",
    )


_READ_POLICY: ContextVar[AllowList | None] = ContextVar("vzsql_read_policy", default=None)


@contextmanager
def reading_under(policy: AllowList | None) -> Iterator[None]:
    """Within the block, ``read_policy()`` is ``policy`` (an operation's inputs' lists)."""
    token = _READ_POLICY.set(policy)
    try:
        yield
    finally:
        _READ_POLICY.reset(token)


def read_policy() -> AllowList | None:
    """The list that bytes read outside a store must pass (``check_read(read_policy(), uri)``).

    None outside an operation on manifests with lists: the URL rules and ``VZSQL_ALLOW``.
    """
    return _READ_POLICY.get()
