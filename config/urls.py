from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from annotation.views import media_file
from config.login import ThrottledLoginView

# A database that went away answers 503 with a retry hint, not a bare 500 (config/database_errors.py).
handler500 = "config.database_errors.server_error"

admin.site.site_header = "TWIN data engine"
admin.site.site_title = "TWIN admin"
admin.site.index_title = "Catalog, mining, training and evaluation"

urlpatterns = [
    # The admin's own sign-in would bypass the limit on failed attempts: it goes to the site's.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("config.api_urls")),
    path("jobs/", include("jobs.urls")),
    path("dataset/exports/", include("training.urls")),
    path("training/", include("training.run_urls")),
    path("evaluation/", include("evaluation.urls")),
    path("dataset/", include("annotation.dataset.urls")),
    path("review/", include("annotation.review.urls")),
    path("", include("annotation.urls")),
]

if settings.MEDIA_STORAGE == "filesystem" and settings.MEDIA_URL.startswith("/"):
    # Catalog photos are not public: the site serves them to signed-in users (S3 serves signed URLs instead).
    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.+)$", media_file, name="media"))
