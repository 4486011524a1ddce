"""Every route of the emulator, registered in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import routes_apps, routes_auth, routes_data, routes_device, routes_devices, routes_events, routes_jobs, routes_tables

if TYPE_CHECKING:
    from .app import Emulator


def register(emu: Emulator) -> None:
    for module in (routes_auth, routes_apps, routes_devices, routes_device, routes_data, routes_events, routes_jobs,
                   routes_tables):
        module.register(emu)
