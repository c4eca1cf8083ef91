"""The studio: a local web app that trains a network on the batched engine and shows it learning.

``tinygrad-edu studio`` runs it. The parts: ``studio.config`` (the settings' table and checks),
``studio.state`` (the training run in a background thread), ``studio.api`` (the Starlette routes and
Server-Sent Events), ``studio.guard`` (Host, Origin and token checks), ``studio.explore`` (the graph
explorer and the files it saves), ``studio.server`` (uvicorn on 127.0.0.1) and ``static/`` (the page,
its script and its style: nothing is loaded from anywhere else).
"""

from .server import StudioServer
from .state import Studio, StudioError

__all__ = ["StudioServer", "Studio", "StudioError"]
