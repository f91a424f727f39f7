"""Access Desk: a Confluence Cloud admin app (Forge Remote). The import root of the product.

Nothing is imported at package import time; ``access_desk.app.create_app()`` wires it together.
"""

__version__ = "0.1.0"
