"""Prompt templates as versioned data files, rendered by one function.

A template is a TOML file ``sqlsluice/llm/prompts/<name>.toml``::

    name = "lithe_basic"
    version = 1
    system = "You rewrite SQL queries ..."
    template = '''Rewrite this query: $query'''
    [defaults]            # generation options (see sqlsluice.llm.base.Options)
    temperature = 0.0
    max_tokens = 1024

Placeholders use :class:`string.Template` syntax (``$name`` / ``${name}``) so that SQL and
JSON braces need no escaping; ``$$`` is a literal dollar.  A missing variable is an error.
The template's hash (name, version, system, template, defaults) is part of every cache key.

>>> t = PromptTemplate(name="t", version=1, system="be brief", template="Say $word.")
>>> [m.content for m in t.render({"word": "hi"})]
['be brief', 'Say hi.']
"""

from __future__ import annotations

import hashlib
import json
import string
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sqlsluice.errors import ConfigError, InvalidParameterValue
from sqlsluice.llm.base import Message, Options

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
# extra folders searched for ``<name>.toml`` (other features may keep their prompts beside them)
_SEARCH: list[Path] = []


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    version: int = 1
    description: str = ""
    system: str = ""
    template: str
    defaults: dict[str, Any] = Field(default_factory=dict)

    @property
    def hash(self) -> str:
        """A short content hash; changes whenever the prompt's text, version or defaults change."""
        blob = json.dumps(self.model_dump(exclude={"description"}), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def options(self, overrides: Options | None = None) -> Options:
        """The template's default options, overridden by the fields set explicitly in ``overrides``."""
        merged = dict(self.defaults)
        if overrides is not None:
            merged.update(overrides.model_dump(exclude_unset=True))
        try:
            return Options.model_validate(merged)
        except ValidationError as e:
            raise InvalidParameterValue(f"prompt {self.name}: bad options: {e.errors()[0]['msg']}") from e

    def render(self, variables: dict[str, Any]) -> list[Message]:
        return render(self, variables)

    @classmethod
    def from_file(cls, path: str | Path) -> PromptTemplate:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}") from e
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            raise ConfigError(f"{p}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from e


def render(template: PromptTemplate, variables: dict[str, Any]) -> list[Message]:
    """The one render function: system + user messages with ``$variables`` substituted."""
    values = {k: v if isinstance(v, str) else json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)
              for k, v in variables.items()}
    out: list[Message] = []
    for role, text in (("system", template.system), ("user", template.template)):
        if not text:
            continue
        try:
            content = string.Template(text).substitute(values)
        except KeyError as e:
            raise InvalidParameterValue(f"prompt {template.name}: missing variable {e.args[0]!r}") from e
        except ValueError as e:
            raise InvalidParameterValue(f"prompt {template.name}: {e}") from e
        out.append(Message(role=role, content=content))
    return out


def add_prompt_dir(path: str | Path) -> None:
    """Search ``path`` for ``<name>.toml`` too (after the built-in folder)."""
    p = Path(path).resolve()
    if p not in _SEARCH:
        _SEARCH.append(p)
        load_prompt.cache_clear()


@lru_cache(maxsize=256)
def load_prompt(name: str) -> PromptTemplate:
    """A template by name (built-in folder, then added folders) or by path to a ``.toml`` file."""
    if name.endswith(".toml"):
        return PromptTemplate.from_file(name)
    for folder in (PROMPT_DIR, *_SEARCH):
        f = folder / f"{name}.toml"
        if f.exists():
            t = PromptTemplate.from_file(f)
            if t.name != name:
                raise ConfigError(f"{f}: name {t.name!r} does not match the file name")
            return t
    raise InvalidParameterValue(f"unknown prompt template {name!r} (looked in {PROMPT_DIR})")


def list_prompts() -> list[PromptTemplate]:
    seen: dict[str, PromptTemplate] = {}
    for folder in (PROMPT_DIR, *_SEARCH):
        for f in sorted(folder.glob("*.toml")):
            seen.setdefault(f.stem, PromptTemplate.from_file(f))
    return list(seen.values())


ADHOC = PromptTemplate(name="adhoc", version=1, template="$messages")
