"""The config file (TOML) and its strict model.

Looked up in this order: ``--config PATH``, ``$SLUICE_CONFIG``, ``./sluice.toml``.
With no file at all, defaults apply: trust for localhost connections, no TLS, no LLM.

Example ``sluice.toml``::

    [server]
    listen = "127.0.0.1:6543"
    backend = "duckdb:///.sluice/tpcds_sf0_1.duckdb"
    tls_cert = "server.crt"     # optional; TLS is offered when set
    tls_key = "server.key"
    auth = "scram-sha-256"      # trust | cleartext | md5 | scram-sha-256

    [[users]]
    name = "app"
    password = "secret"

    [llm]
    base_url = "http://127.0.0.1:8000/v1"   # else $OPENAI_BASE_URL
    api_key_env = "OPENAI_API_KEY"
    [llm.models]
    default = "gpt-4o-mini"
    text2sql = "gpt-4o-mini"
    rewrite = "gpt-4o"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sqlsluice.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:6543"
STATE_DIR = Path(os.environ.get("SLUICE_HOME", ".sluice"))
DEMO_DB = STATE_DIR / "tpcds_sf0_1.duckdb"
DEFAULT_BACKEND = f"duckdb:///{DEMO_DB}"


def shared_data_dir() -> Path:
    """The benchmark data folder: ``$SLUICE_SHARED/data``, else ``../shared/data`` from the
    working directory (where the project's ``shared/`` sits beside the checkout)."""
    env = os.environ.get("SLUICE_SHARED")
    return (Path(env) if env else Path.cwd().parent / "shared") / "data"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class User(Strict):
    name: str
    password: str


class ServerConfig(Strict):
    listen: str = DEFAULT_LISTEN
    backend: str = DEFAULT_BACKEND
    auth: Literal["trust", "cleartext", "md5", "scram-sha-256"] | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    statement_timeout_s: float = 300.0
    # where shared state lives (rewrite cache, query log, ledger); a DuckDB file or a
    # postgresql:// URL (schema ``sluice``) shared by several proxies
    state: str | None = None


class LLMConfig(Strict):
    provider: Literal["openai", "transformers"] = "openai"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    model_path: str | None = None
    models: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = 60.0
    max_retries: int = 4
    concurrency: int = 4
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)


class RewriteConfig(Strict):
    enabled: bool = True
    mode: Literal["on", "off", "shadow"] = "on"
    rewriter: Literal["rules", "llm-r2", "lithe", "all"] = "rules"
    policy: Literal["proved", "sound-rules", "tested"] = "sound-rules"
    min_speedup: float = 1.2
    token_budget: int = 20000


class AskConfig(Strict):
    router: str = "tables"
    row_limit: int = 1000
    statement_timeout_s: float = 30.0


class Config(Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    users: list[User] = Field(default_factory=list)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    rewrite: RewriteConfig = Field(default_factory=RewriteConfig)
    ask: AskConfig = Field(default_factory=AskConfig)
    source: str | None = None

    def user(self, name: str) -> User | None:
        for u in self.users:
            if u.name == name:
                return u
        return None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the config file; a missing default file means defaults, a bad file is an error.

    ``$SLUICE_BACKEND`` and ``$SLUICE_LISTEN`` override the file's server settings.
    """
    cfg = _load_file(path)
    if os.environ.get("SLUICE_BACKEND"):
        cfg.server.backend = os.environ["SLUICE_BACKEND"]
    if os.environ.get("SLUICE_LISTEN"):
        cfg.server.listen = os.environ["SLUICE_LISTEN"]
    return cfg


def _load_file(path: str | os.PathLike[str] | None) -> Config:
    candidates: list[Path] = []
    explicit = path is not None or "SLUICE_CONFIG" in os.environ
    if path is not None:
        candidates.append(Path(path))
    elif "SLUICE_CONFIG" in os.environ:
        candidates.append(Path(os.environ["SLUICE_CONFIG"]))
    else:
        candidates.append(Path("sluice.toml"))
    p = candidates[0]
    if not p.exists():
        if explicit:
            raise ConfigError(f"config file not found: {p}")
        return Config()
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from e
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{p}: {loc}: {first['msg']}") from e
    cfg.source = str(p)
    return cfg
