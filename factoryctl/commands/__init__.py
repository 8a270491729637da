"""Typer sub-applications mounted by factoryctl.cli."""
