from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path, register_converter
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chat_realtime import views
from chat_realtime.converters import IdConverter
from messaging import views as messaging_views

# Before the includes below, which use it.
register_converter(IdConverter, "id")

api_patterns = [
    path("", include(("accounts.api_urls", "accounts"), namespace="accounts")),
    path("", include(("friends.api_urls", "friends"), namespace="friends")),
    path("", include(("messaging.api_urls", "messaging"), namespace="messaging")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]

urlpatterns = [
    path("", messaging_views.home, name="home"),
    path("", include("messaging.urls")),
    path("", include("friends.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("api/", include((api_patterns, "api"))),
    path("admin/", admin.site.urls),
]

if not settings.STORAGES["default"]["BACKEND"].endswith("CloudinaryStorage"):
    # Local media (the embedded default). Behind a real deployment, the proxy serves these.
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]

handler400 = "chat_realtime.errors.bad_request"
handler404 = "chat_realtime.errors.page_not_found"
handler500 = "chat_realtime.errors.server_error"
