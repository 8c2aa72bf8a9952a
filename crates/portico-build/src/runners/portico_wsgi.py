"""Portico's WSGI entry for Flask and Dash apps, served by gunicorn.

Finds the application object in the analyst's module so that the app needs no
Portico-specific code: a dash.Dash instance (its Flask server is used), a flask.Flask
instance, a create_app() factory, or a callable named application/app/server.
"""
import importlib
import os
import sys


def _find_application():
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(os.environ["PORTICO_ENTRY_MODULE"])
    values = list(vars(module).values())
    try:
        import dash

        for value in values:
            if isinstance(value, dash.Dash):
                return value.server
    except ImportError:
        pass
    try:
        import flask

        for value in values:
            if isinstance(value, flask.Flask):
                return value
    except ImportError:
        pass
    for name in ("create_app", "make_app"):
        factory = getattr(module, name, None)
        if callable(factory):
            return factory()
    for name in ("application", "app", "server"):
        value = getattr(module, name, None)
        if callable(value):
            return value
    raise RuntimeError(
        "Portico found no Flask or Dash app in %s: define app = Flask(__name__) or app = Dash(__name__)"
        % getattr(module, "__file__", module.__name__)
    )


application = _find_application()
