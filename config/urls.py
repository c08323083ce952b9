from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from annotation.views import media_file

admin.site.site_header = "TWIN data engine"
admin.site.site_title = "TWIN admin"
admin.site.index_title = "Catalog, mining, training and evaluation"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
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
