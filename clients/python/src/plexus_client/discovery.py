"""Finding a node's API address and token the way the ``plexus`` CLI does.

The data directory is, in order: the ``data_dir`` argument, ``PLEXUS_DATA_DIR``, ``data_dir``
in the config file, then ``$XDG_DATA_HOME/plexus`` (``~/.local/share/plexus``). The config file
is the ``config`` argument, ``PLEXUS_CONFIG``, then ``$XDG_CONFIG_HOME/plexus/config.toml``.
A running node writes its address to ``api.addr``; its bearer token is in ``api.token``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from .errors import NoNodeError

API_ADDR_FILE = "api.addr"
TOKEN_FILE = "api.token"


@dataclass(frozen=True)
class NodeAddress:
    """Where a node's API is and the token it wants."""

    base_url: str
    token: str


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    if value:
        return Path(value)
    home = os.environ.get("HOME")
    if not home:
        raise NoNodeError(
            "cannot determine a home directory: set HOME, or pass data_dir explicitly"
        )
    return Path(home) / fallback


def resolve_data_dir(
    data_dir: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> Path:
    """The data directory the CLI would use with these arguments and this environment."""
    if data_dir is not None:
        return Path(data_dir)
    from_env = os.environ.get("PLEXUS_DATA_DIR")
    if from_env:
        return Path(from_env)
    config_path = Path(
        config
        or os.environ.get("PLEXUS_CONFIG")
        or _xdg("XDG_CONFIG_HOME", ".config") / "plexus" / "config.toml"
    )
    if config_path.is_file():
        try:
            settings = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise NoNodeError(f"cannot read the config file {config_path}: {error}") from error
        configured = settings.get("data_dir")
        if isinstance(configured, str) and configured:
            return Path(configured)
    return _xdg("XDG_DATA_HOME", ".local/share") / "plexus"


def find_node(
    data_dir: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> NodeAddress:
    """The address and token of the node running on the data directory."""
    directory = resolve_data_dir(data_dir, config)
    try:
        address = (directory / API_ADDR_FILE).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise NoNodeError(
            f"no running node found for {directory} (no {API_ADDR_FILE}): "
            "start one with `plexus run`"
        ) from error
    try:
        token = (directory / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise NoNodeError(f"cannot read the API token {directory / TOKEN_FILE}: {error}") from error
    if not address or any(character.isspace() for character in address):
        raise NoNodeError(f"{directory / API_ADDR_FILE} does not hold a socket address")
    return NodeAddress(base_url=f"http://{address}", token=token)


class ClientOptions(TypedDict, total=False):
    """The keyword options of ``Client`` and ``AsyncClient``."""

    data_dir: str | os.PathLike[str] | None
    """Where to find the node when ``base_url`` or ``token`` is not given."""
    namespace: str | None
    """The coordination space; None means the node's configured namespace."""
    timeout_s: float
    """How long one request may take."""


def connection(
    base_url: str | None, token: str | None, data_dir: str | os.PathLike[str] | None
) -> tuple[str, dict[str, str]]:
    """The base URL and headers of a client: as given, or found from the data directory."""
    if base_url is None or token is None:
        found = find_node(data_dir)
        base_url = base_url or found.base_url
        token = token or found.token
    return base_url.rstrip("/"), {"Authorization": f"Bearer {token}"}
