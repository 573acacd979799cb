"""What every Graph collection shares: its place in the directory, and the collection-level verbs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from ..core import Context, GraphError, Response

if TYPE_CHECKING:
    from . import GraphApi


class GraphCollection(ABC):
    name = "objects"

    def __init__(self, graph: GraphApi) -> None:
        self.graph = graph
        self.directory = graph.directory
        self.store = graph.app.store

    def collection(self, ctx: Context) -> Response:
        """GET lists, POST creates; anything else is not allowed on a collection."""
        method = ctx.request.method
        if method == "GET":
            return self.list_all(ctx)
        if method == "POST":
            return self.create_new(ctx)
        raise GraphError(405, "Request_BadRequest", f"The method '{method}' is not allowed on {self.name}.")

    @abstractmethod
    def list_all(self, ctx: Context) -> Response:
        """GET on the collection: what the caller may see, filtered, selected and paged."""

    @abstractmethod
    def create_new(self, ctx: Context) -> Response:
        """POST on the collection."""
