"""factoryctl: compile one factory.yaml into a running, verified AI factory."""

__version__ = "0.1.0"
