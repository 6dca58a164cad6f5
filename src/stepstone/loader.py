"""Find the App a command line names as `module:attribute` (or a file path)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from .app import App
from .errors import ConfigError


def load_app(target: str, database: str | None = None) -> App:
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise ConfigError(f"{target!r}: write module:app, e.g. examples.shop:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot load {module_name!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    if attr:
        app = getattr(module, attr, None)
    else:
        found = [v for v in vars(module).values() if isinstance(v, App)]
        app = found[0] if len(found) == 1 else None
    if not isinstance(app, App):
        raise ConfigError(f"{target!r} does not name a stepstone.App")
    if database:
        app.database_url = database
    return app
