"""Summary templates: data files saying what a summary asks for.

A template is a TOML (or JSON) file with::

    name = "standup"                 # what --template and the app use (default: the file name)
    title = "Stand-up"               # shown to the user
    description = "..."              # optional, one line
    instruction = "..."              # what the model is asked to write, in Markdown
    fields = ["action_items", "open_questions"]   # structured results to collect

``fields`` is any of ``action_items`` (text, owner, due), ``decisions`` and
``open_questions``. The built-in templates ship in ``app/pipeline/templates/``;
a user adds or overrides one by putting a file in ``<data folder>/templates/``.
A user file that cannot be read is skipped with a one-line notice, never a crash.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import MinutelyError, one_line
from app.paths import data_dir

FIELDS = ("action_items", "decisions", "open_questions")
BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
SUFFIXES = (".toml", ".json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TemplateError(MinutelyError, ValueError):
    """A template that cannot be used, with a one-line reason."""


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    instruction: str
    fields: tuple[str, ...] = FIELDS
    description: str = ""
    path: str | None = None       # where it was read from
    builtin: bool = True


@dataclass
class Templates:
    """The templates found, by name, and a notice per file that was skipped."""
    by_name: dict[str, Template] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    def get(self, name: str) -> Template:
        if name in self.by_name:
            return self.by_name[name]
        for notice in self.notices:  # a user file of that name was broken: say why
            if notice.startswith(f"template '{name}' "):
                raise TemplateError(notice)
        raise TemplateError(f"unknown template '{name}' (available: {', '.join(sorted(self.by_name))})")

    def __iter__(self):
        return iter(sorted(self.by_name.values(), key=lambda t: (not t.builtin, t.name)))


def user_dir() -> Path:
    return data_dir() / "templates"


def parse_template(path: Path, builtin: bool = False) -> Template:
    """Read one template file; TemplateError with a one-line reason if it is unusable."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8")) if path.suffix == ".toml" else json.loads(raw)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as e:
        raise TemplateError(one_line(e)) from None
    if not isinstance(data, dict):
        raise TemplateError("it is not a table of keys")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise TemplateError(f"bad name {name!r} (letters, digits, '-', '_', '.')")
    instruction = data.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise TemplateError("it has no 'instruction' text")
    title = data.get("title", name)
    description = data.get("description", "")
    if not isinstance(title, str) or not isinstance(description, str):
        raise TemplateError("'title' and 'description' must be text")
    fields = data.get("fields", list(FIELDS))
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise TemplateError(f"'fields' must be a list of: {', '.join(FIELDS)}")
    bad = [f for f in fields if f not in FIELDS]
    if bad:
        raise TemplateError(f"unknown field(s) {', '.join(bad)} (known: {', '.join(FIELDS)})")
    return Template(name=name, title=title.strip() or name, instruction=instruction.strip(),
                    fields=tuple(dict.fromkeys(fields)), description=description.strip(),
                    path=str(path), builtin=builtin)


def load_templates(extra_dir: Path | None = None) -> Templates:
    """The built-in templates, then the user's (``<data folder>/templates`` unless
    ``extra_dir`` is given); a user template of the same name replaces a built-in one."""
    out = Templates()
    for path in sorted(BUILTIN_DIR.iterdir()):
        if path.suffix in SUFFIXES:
            t = parse_template(path, builtin=True)  # a broken built-in is a bug: let it raise
            out.by_name[t.name] = t
    folder = extra_dir if extra_dir is not None else user_dir()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            try:
                t = parse_template(path)
            except TemplateError as e:
                out.notices.append(f"template '{path.stem}' in {path.name} was skipped: {e}")
                continue
            out.by_name[t.name] = t
    return out
