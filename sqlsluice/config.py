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

    [http]
    listen = "127.0.0.1:6544"   # /metrics (Prometheus) and /healthz; off when unset (--http-listen)

    [log]
    level = "info"              # debug | info | warning | error (--log-level)
    format = "text"             # text | json: one JSON object per line (--log-format)

    [databases]                 # optional: client database name -> backend (as PgBouncer)
    shop = "duckdb:///shop.duckdb"
    sales = "postgresql://app@db:5432/sales"
    "*" = "postgresql://app@db:5432/postgres"   # any other name: that database on this server
    # without [databases], server.backend serves every name; over PostgreSQL the client's
    # database name replaces the URL's (an unknown one gets PostgreSQL's FATAL 3D000)
    # an entry may also be a table: crm = {backend = "postgresql://...", pool_mode = "transaction"}

    [pool]                      # optional: PostgreSQL server connection pooling (README "Pooling")
    pool_mode = "session"       # session | transaction
    pool_size = 20              # server connections per (database, upstream role)
    max_client_conn = 1000      # clients of the whole server, all databases; beyond: FATAL 53300
    query_wait_timeout = 120    # seconds a client waits for a server connection, then 53300
    server_idle_timeout = 600   # close a pooled server connection idle longer than this (0: never)
    server_lifetime = 3600      # close a server connection older than this when it comes back (0: never)

    [auth]                      # optional: PgBouncer's auth_query for clients not in [[users]]
    user = "pgbouncer"          # auth_user: the upstream role that runs the query (enables it)
    password = "..."            # its password (else the backend URL's, when it names this role)
    query = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"   # PgBouncer's default
    # dbname = "postgres"       # auth_dbname: where the query runs (default: the client's database)
    cache_s = 10                # how long a looked-up secret is reused

The file is validated as a whole: every mistake is reported, one line each
(``sluice.toml: server.listen: port 99999 is out of range 1-65535``), and ``sluice``
exits with code 2.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sqlsluice.errors import ConfigError, SluiceError

DEFAULT_LISTEN = "127.0.0.1:6543"
STATE_DIR = Path(os.environ.get("SLUICE_HOME", ".sluice"))
DEMO_DB = STATE_DIR / "tpcds_sf0_1.duckdb"
DEFAULT_BACKEND = f"duckdb:///{DEMO_DB}"


def shared_data_dir() -> Path:
    """The benchmark data folder: ``$SLUICE_SHARED/data``, else ``../shared/data`` from the
    working directory (where the project's ``shared/`` sits beside the checkout)."""
    env = os.environ.get("SLUICE_SHARED")
    return (Path(env) if env else Path.cwd().parent / "shared") / "data"


class ConfigInvalid(ConfigError):
    """A config with one or more mistakes; ``errors`` holds one line per mistake."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def listen_error(listen: str) -> str | None:
    """Why ``listen`` is not a usable ``HOST:PORT`` (port 0 asks the OS for a free port), or None.

    >>> listen_error("127.0.0.1:99999")
    'port 99999 is out of range 1-65535 (0: any free port)'
    """
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        return f"bad listen address {listen!r}: use HOST:PORT, e.g. 127.0.0.1:6543"
    if int(port) > 65535:
        return f"port {int(port)} is out of range 1-65535 (0: any free port)"
    return None


PIPELINES = ("cache", "basic", "decompose", "ensemble")
ROUTER_SPECS = ("tables", "cascade", "cascade:<min_confidence>", "agree[:<model>,<model>][@<pipeline>]",
                "always:<cache|basic|decompose|ensemble>",
                "budget:<fraction>[@<saved router>]", "<saved router name or .joblib path>")


def router_error(spec: str) -> str | None:
    """Why ``spec`` names no router (see :mod:`sqlsluice.routers.base`), or None.

    Built-in specs are checked here; other names must be routers saved by ``sluice route
    train`` (a file, or a row of the state store).

    >>> router_error("always:basic") is None, router_error("cascade:0.8") is None
    (True, True)
    >>> router_error("always:magic").startswith("unknown router 'always:magic': valid routers are tables")
    True
    """
    s = spec.strip()
    valid = ", ".join(ROUTER_SPECS)
    bad = f"unknown router {s!r}: valid routers are {valid}"
    if s in ("tables", "cascade"):
        return None
    if s.startswith("always:"):
        return None if s.split(":", 1)[1] in PIPELINES else bad
    if s == "agree" or s.startswith(("agree:", "agree@")):
        from sqlsluice.routers.agree import parse_agree

        try:
            parse_agree(s)
        except SluiceError as e:
            return e.message
        return None
    if s.startswith("cascade:"):
        try:
            c = float(s.split(":", 1)[1])
        except ValueError:
            return bad
        return None if 0.0 <= c <= 1.0 else f"router {s!r}: min_confidence must be within 0..1"
    if s.startswith("budget:"):
        frac, _, name = s.split(":", 1)[1].partition("@")
        try:
            b = float(frac)
        except ValueError:
            return f"router {s!r}: bad budget, use budget:0.4 or budget:0.4@<saved router>"
        if b <= 0:
            return f"router {s!r}: the budget must be > 0"
        s = name or "learned"
    if not s:
        return bad
    try:
        from sqlsluice.routers.base import load_router, routers_dir

        # a saved router: a file, or a row of a state store that exists (never create one here)
        path = Path(s)
        if not (path.suffix in (".joblib", ".pkl") or path.exists() or (routers_dir() / f"{s}.joblib").exists()
                or os.environ.get("SLUICE_STATE") or (STATE_DIR / "state.sqlite").exists()):
            return bad
        load_router(s)
    except SluiceError:
        return f"unknown router {s!r}: valid routers are {valid}"
    except (OSError, ValueError, ImportError, EOFError) as e:
        return f"router {s!r} cannot be loaded: {e}"
    return None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class User(Strict):
    name: str
    password: str
    admin: bool = False  # may use the admin console (SHOW sluice.stats, clients, databases, rewrites)
    # the upstream PostgreSQL role this user runs as (default: the user's own name), and its
    # password there (default: the user's password here)
    upstream_role: str | None = None
    upstream_password: str | None = None


class ServerConfig(Strict):
    listen: str = DEFAULT_LISTEN
    backend: str = DEFAULT_BACKEND
    auth: Literal["trust", "cleartext", "md5", "scram-sha-256"] | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    statement_timeout_s: float = Field(default=300.0, gt=0)
    # SIGTERM/SIGINT: how long statements in flight may finish before their clients get
    # FATAL 57P01 and their upstream work is cancelled
    shutdown_timeout_s: float = Field(default=30.0, ge=0)
    # over PostgreSQL, who a client's session runs as upstream: "client" (its own user name, or
    # its [[users]] entry's upstream_role: PostgreSQL's own grants apply) or "backend" (the
    # backend URL's role for everyone, the first round's behaviour). The rewriter's own
    # connections always use the backend URL's role (read-only grants are enough).
    upstream_identity: Literal["client", "backend"] = "client"
    # where shared state lives (rewrite cache, query log, ledger); a DuckDB file or a
    # postgresql:// URL (schema ``sluice``) shared by several proxies
    state: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        err = listen_error(v)
        if err:
            raise ValueError(err)
        return v


class LLMConfig(Strict):
    provider: Literal["openai", "transformers"] = "openai"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    model_path: str | None = None
    models: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    concurrency: int = Field(default=4, ge=1)
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)


class RewriteConfig(Strict):
    enabled: bool = True
    # review: found rewrites wait for `sluice rewrites approve` before they are served
    mode: Literal["on", "off", "shadow", "review"] = "on"
    rewriter: Literal["rules", "llm-r2", "lithe", "all"] = "rules"
    policy: Literal["proved", "tested"] = "proved"
    min_speedup: float = Field(default=1.2, ge=1.0)
    token_budget: int = Field(default=20000, ge=0)
    # seconds the verifier may spend proving one candidate (the search runs in the background)
    verify_budget_s: float = Field(default=10.0, gt=0)


class AskConfig(Strict):
    router: str = "tables"
    row_limit: int = Field(default=1000, gt=0)
    statement_timeout_s: float = Field(default=30.0, gt=0)


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class HttpConfig(Strict):
    """``[http]``: the metrics and health endpoints (``/metrics``, ``/healthz``); off when unset."""

    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None and (err := listen_error(v)):
            raise ValueError(err)
        return v


class DatabaseConfig(Strict):
    """One ``[databases]`` entry: where a client database name is served (PgBouncer-style).

    ``backend`` is a ``duckdb:///PATH`` or ``postgresql://`` URL; under the name ``*`` the
    client's database name replaces the URL's.  A plain string is the same as ``{backend = ...}``.
    """

    backend: str
    # pooling of this database's PostgreSQL server connections; None: the [pool] value
    pool_mode: Literal["session", "transaction"] | None = None
    pool_size: int | None = Field(default=None, ge=1)
    max_client_conn: int | None = Field(default=None, ge=1)  # clients of this database
    query_wait_timeout: float | None = Field(default=None, gt=0)
    server_idle_timeout: float | None = Field(default=None, ge=0)
    server_lifetime: float | None = Field(default=None, ge=0)
    # auth_query for this database (PgBouncer's per-database auth_user / auth_query / auth_dbname)
    auth_user: str | None = None
    auth_query: str | None = None
    auth_dbname: str | None = None


class PoolConfig(Strict):
    """``[pool]``: the defaults of every PostgreSQL database (see README "Pooling").

    ``session`` without ``pool_size`` is one upstream session per client, opened and closed
    with it; with ``pool_size`` server connections are reused (after ``DISCARD ALL``).
    ``transaction`` holds a server connection from a transaction's first statement to its end.
    ``pool_size`` counts server connections per (database, upstream role); ``max_client_conn``
    the clients of the whole server (every database; ``[databases]`` entries may set their own
    limit); a client waits up to ``query_wait_timeout`` seconds for a server connection (FIFO),
    then gets 53300.  A pooled server connection idle longer than ``server_idle_timeout``
    seconds is closed, and one older than ``server_lifetime`` seconds is closed when it comes
    back (0: never), as in PgBouncer.
    """

    pool_mode: Literal["session", "transaction"] = "session"
    pool_size: int | None = Field(default=None, ge=1)  # transaction mode: 20 when unset
    max_client_conn: int | None = Field(default=None, ge=1)
    query_wait_timeout: float = Field(default=120.0, gt=0)
    server_idle_timeout: float = Field(default=600.0, ge=0)
    server_lifetime: float = Field(default=3600.0, ge=0)


DEFAULT_AUTH_QUERY = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"


class AuthConfig(Strict):
    """``[auth]``: PgBouncer's ``auth_query``.  A client that is not in ``[[users]]`` is checked
    against the secret (SCRAM verifier or md5 hash) that ``query`` returns for its name, run
    upstream as ``user`` (``auth_user``; it enables the lookup) in ``dbname`` (default: the
    client's database).  ``password`` is that role's password; unset: the backend URL's when
    the URL names the same role, else a ``[[users]]`` entry of that name.
    """

    user: str | None = None
    password: str | None = None
    query: str = DEFAULT_AUTH_QUERY
    dbname: str | None = None
    cache_s: float = Field(default=10.0, ge=0)  # how long a looked-up secret (or its absence) is reused


class Config(Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    users: list[User] = Field(default_factory=list)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    rewrite: RewriteConfig = Field(default_factory=RewriteConfig)
    ask: AskConfig = Field(default_factory=AskConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    # client database name -> backend; empty: every name goes to ``server.backend``
    databases: dict[str, DatabaseConfig | str] = Field(default_factory=dict)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    source: str | None = None

    def user(self, name: str) -> User | None:
        for u in self.users:
            if u.name == name:
                return u
        return None

    @property
    def auth_query_enabled(self) -> bool:
        """An ``auth_user`` is set in ``[auth]`` or for some ``[databases]`` entry."""
        return bool(self.auth.user) or any(isinstance(d, DatabaseConfig) and d.auth_user
                                           for d in self.databases.values())

    @property
    def auth_method(self) -> str:
        """The client authentication in force: ``server.auth``, else scram-sha-256 when there
        are ``[[users]]`` or an ``auth_query``, else trust (localhost only)."""
        return self.server.auth or ("scram-sha-256" if self.users or self.auth_query_enabled else "trust")


def load_config(path: str | os.PathLike[str] | None = None, *, listen: str | None = None,
                backend: str | None = None, http_listen: str | None = None) -> Config:
    """Load the config file; a missing default file means defaults, a bad file is an error.

    ``$SLUICE_BACKEND`` and ``$SLUICE_LISTEN`` override the file's server settings,
    ``$SLUICE_LOG_LEVEL`` and ``$SLUICE_LOG_FORMAT`` its ``[log]``, and ``listen``/``backend``
    (the command-line flags) override those.  Every mistake in the
    file, the environment and the flags is reported at once (:class:`ConfigInvalid`).
    """
    p, data = _read_file(path)
    where = str(p) if data is not None else "config"
    errors: list[str] = []
    cfg: Config | None = None
    try:
        cfg = Config.model_validate(data or {})
    except ValidationError as e:
        errors += [f"{where}: {_loc(err['loc'])}: {_msg(err)}" for err in e.errors()]
    errors += [f"{where}: {m}" for m in semantic_errors(data or {})]
    overrides = [("$SLUICE_LISTEN", os.environ.get("SLUICE_LISTEN")), ("--listen", listen),
                 ("--http-listen", http_listen)]
    for name, value in overrides:
        if value and (err := listen_error(value)):
            errors.append(f"{name}: {err}")
    log_env = {"level": os.environ.get("SLUICE_LOG_LEVEL", "").lower(),
               "format": os.environ.get("SLUICE_LOG_FORMAT", "").lower()}
    for key, allowed in (("level", ("debug", "info", "warning", "error")), ("format", ("text", "json"))):
        if log_env[key] and log_env[key] not in allowed:
            errors.append(f"$SLUICE_LOG_{key.upper()}: {log_env[key]!r} is not one of {', '.join(allowed)}")
    if errors:
        raise ConfigInvalid(errors)
    assert cfg is not None
    if data is not None:
        cfg.source = str(p)
    if os.environ.get("SLUICE_BACKEND"):
        cfg.server.backend = os.environ["SLUICE_BACKEND"]
    if os.environ.get("SLUICE_LISTEN"):
        cfg.server.listen = os.environ["SLUICE_LISTEN"]
    if log_env["level"]:
        cfg.log.level = log_env["level"]  # type: ignore[assignment]
    if log_env["format"]:
        cfg.log.format = log_env["format"]  # type: ignore[assignment]
    if backend:
        cfg.server.backend = backend
    if listen:
        cfg.server.listen = listen
    if http_listen:
        cfg.http.listen = http_listen
    return cfg


def semantic_errors(data: dict[str, Any]) -> list[str]:
    """Mistakes that no single field shows: auth without users, unknown routers, TLS halves."""
    errors: list[str] = []
    server: dict[str, Any] = data["server"] if isinstance(data.get("server"), dict) else {}
    users: list[Any] = data["users"] if isinstance(data.get("users"), list) else []
    auth = server.get("auth")
    dbs: dict[str, Any] = data["databases"] if isinstance(data.get("databases"), dict) else {}
    auth_user = (data["auth"].get("user") if isinstance(data.get("auth"), dict) else None) or any(
        isinstance(d, dict) and d.get("auth_user") for d in dbs.values())
    if auth in ("cleartext", "md5", "scram-sha-256") and not users and not auth_user:
        errors.append(f"server.auth: auth = {auth!r} needs at least one [[users]] entry "
                      "(name, password) or [auth] user (auth_query): nobody could log in")
    if bool(server.get("tls_cert")) != bool(server.get("tls_key")):
        errors.append("server.tls_cert, server.tls_key: give both or neither")
    names = [u.get("name") for u in users if isinstance(u, dict)]
    for n in sorted({n for n in names if n and names.count(n) > 1}):
        errors.append(f"users: user {n!r} is listed more than once")
    ask: dict[str, Any] = data["ask"] if isinstance(data.get("ask"), dict) else {}
    router = ask.get("router")
    if isinstance(router, str) and (err := router_error(router)):
        errors.append(f"ask.router: {err}")
    return errors


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for x in loc:
        out += f"[{x}]" if isinstance(x, int) else (f".{x}" if out else str(x))
    return out or "(top level)"


def _msg(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        return "unknown setting"
    if "input" in err and err.get("type") not in ("missing", "model_type", "dict_type"):
        value = err["input"]
        if isinstance(value, str | int | float | bool):
            msg += f" (got {value!r})"
    return msg


def _read_file(path: str | os.PathLike[str] | None) -> tuple[Path, dict[str, Any] | None]:
    explicit = path is not None or "SLUICE_CONFIG" in os.environ
    if path is not None:
        p = Path(path)
    elif "SLUICE_CONFIG" in os.environ:
        p = Path(os.environ["SLUICE_CONFIG"])
    else:
        p = Path("sluice.toml")
    if not p.exists():
        if explicit:
            raise ConfigError(f"config file not found: {p}")
        return p, None
    try:
        return p, tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from e
