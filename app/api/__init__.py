"""REST routers, one module per resource, mounted by ``app.main.create_app``."""
