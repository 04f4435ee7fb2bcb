from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/register", api.RegisterApi.as_view(), name="register"),
    path("auth/login", api.LoginApi.as_view(), name="login"),
    path("auth/refresh", api.RefreshApi.as_view(), name="refresh"),
    path("auth/logout", api.LogoutApi.as_view(), name="logout"),
    path("auth/password-change", api.PasswordChangeApi.as_view(), name="password_change"),
    path("auth/password-reset", api.PasswordResetApi.as_view(), name="password_reset"),
    path("auth/password-reset/confirm", api.PasswordResetConfirmApi.as_view(), name="password_reset_confirm"),
    path("me", api.MeApi.as_view(), name="me"),
    path("reports", api.ReportApi.as_view(), name="reports"),
]
