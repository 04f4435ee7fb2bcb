from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin, on the project's site (accounts.admin_site); named in INSTALLED_APPS in its place."""

    default = False  # the accounts app's own config is AccountsConfig
    default_site = "accounts.admin_site.ChatAdminSite"
