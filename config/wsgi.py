import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
application = get_wsgi_application()
# Import every view now, while the worker boots, rather than in the first request it serves (about 0.3 s:
# an annotator's answer stuck behind a fresh worker's imports).
get_resolver().url_patterns  # noqa: B018 - the access is the import
