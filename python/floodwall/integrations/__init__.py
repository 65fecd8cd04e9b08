"""Web-framework adapters, one module per framework.

Import the one you use (floodwall.integrations.asgi, .flask, .django, .drf);
this package itself imports no framework, so `import floodwall` stays light.
"""

from __future__ import annotations

from floodwall.integrations._common import Guard, Limit

__all__ = ["Guard", "Limit"]
