"""The training app's services: writes, each in its own module."""
