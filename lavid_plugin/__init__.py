"""lavid-plugin: LaViD (an LLM teaches a vision student) as a plugin for mdistiller.

Stage 1 (``lavid_plugin.signature``) turns class names into an LLM signature once per dataset;
Stage 2 (``lavid_plugin.distillers``, ``lavid_plugin.engine``) trains students with it.
"""

__version__ = "0.1.0"

from .errors import LavidError  # noqa: F401
