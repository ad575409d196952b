"""reflectchat: local chat for reasoning models, with thinking, reflections and answer apart."""

__version__ = "0.1.0"
