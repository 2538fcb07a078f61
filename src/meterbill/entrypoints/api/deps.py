"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from meterbill.bootstrap import Container


def get_container(request: Request) -> Container:
    """The container `create_app` was given (one per app; no module-level state)."""
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]
