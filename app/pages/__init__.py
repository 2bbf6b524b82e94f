"""HTML pages for chemists: runs, a new-run form, live dashboards, a molecule browser, routes.

The pages are thin: templates render a shell and small vanilla scripts read the REST API
(``/api/v1``). ``pages_router()`` builds the router; ``create_app`` includes it.
"""

from app.pages.routes import pages_router

__all__ = ["pages_router"]
