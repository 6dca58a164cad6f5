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
        if not path.is_file():
            raise ConfigError(f"{target!r}: there is no file {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot load {module_name!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # only the module named itself (or its package): a module that fails to import
            # one of its own dependencies shows that error, traceback and all
            if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
                raise
            raise ConfigError(
                f"{target!r}: no module named {exc.name!r} (looked in {os.getcwd()} and "
                "sys.path); run the command from your project's directory, or write "
                "path/to/file.py:app"
            ) from None
    apps = {name: v for name, v in vars(module).items() if isinstance(v, App)}
    if attr:
        app = getattr(module, attr, None)
    else:
        app = next(iter(apps.values())) if len(apps) == 1 else None
    if not isinstance(app, App):
        what = f"has no stepstone.App named {attr!r}" if attr else "names no single stepstone.App"
        known = f"; its apps: {', '.join(sorted(apps))}" if apps else "; it defines no App"
        raise ConfigError(f"{target!r}: module {module_name!r} {what}{known}")
    if database:
        app.database_url = database
    return app
