"""The staff web app: FastAPI with routes per noun, one dependency module (services, the
signed-in user), one error handler, and the pages with their static files."""
