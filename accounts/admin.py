from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.models import Group
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from accounts import services
from accounts.models import Report, User
from chat_realtime.errors import ApplicationError

admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """A group hands out permissions: only superusers make or change one (as only they grant permissions)."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class UserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email", "phone_number")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserCreationForm
    list_display = ("username", "email", "phone_number", "is_active", "is_staff", "date_joined", "last_seen")
    list_filter = ("is_active", "is_staff", "is_superuser", "date_joined")
    search_fields = ("username", "email", "phone_number")
    actions = ["ban", "reactivate"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Contact", {"fields": ("email", "phone_number", "avatar")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "last_seen", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "phone_number", "password1", "password2")}),
    )

    def has_ban_permission(self, request):
        return request.user.has_perm("accounts.ban_user")

    @admin.action(description="Ban (deactivate): close their sockets, revoke their tokens", permissions=["ban"])
    def ban(self, request, queryset):
        logged = "Banned: deactivated, sessions ended, refresh tokens revoked."
        self._each(request, queryset, services.deactivate_user, logged=logged, done="Banned")

    @admin.action(description="Reactivate", permissions=["ban"])
    def reactivate(self, request, queryset):
        self._each(request, queryset, services.reactivate_user, logged="Reactivated.", done="Reactivated")

    def _each(self, request, queryset, action, *, logged: str, done: str) -> None:
        """`action` on each selected person by this moderator: each refusal shown, each change logged."""
        changed = 0
        for user in queryset:
            try:
                action(user=user, moderator=request.user)
            except ApplicationError as error:
                self.message_user(request, f"{user.username}: {error.message}", messages.WARNING)
                continue
            changed += 1
            self.log_change(request, user, logged)
        self.message_user(request, f"{done} {changed} user(s).")

    def has_change_permission(self, request, obj=None):
        # Also what guards the password form: Django's asks this of the account it would change.
        return super().has_change_permission(request, obj) and self._may_manage(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_manage(request, obj)

    def _may_manage(self, request, obj) -> bool:
        if obj is None:
            return True
        try:
            services.ensure_may_manage(moderator=request.user, user=obj)
        except ApplicationError:
            return False
        return True

    def get_readonly_fields(self, request, obj=None):
        # Only superusers hand out power: a moderator cannot make anyone (themselves included) staff.
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        fields = ("is_staff", "is_superuser", "groups", "user_permissions", "last_login", "date_joined")
        may_ban = obj is None or request.user.has_perm("accounts.ban_user")
        if obj is not None and may_ban:
            try:
                services.ensure_may_ban(moderator=request.user, user=obj)
            except ApplicationError:
                may_ban = False
        # Unticking "active" is a ban: only where the ban rule allows it.
        return fields if may_ban else (*fields, "is_active")

    def user_change_password(self, request, id, form_url=""):
        account = self.get_object(request, unquote(id))
        if account is not None and account.pk == request.user.pk:
            # Your own password is changed knowing the current one, as on the site (the account as the URL
            # finds it: "01" names the same one as "1").
            return redirect("admin:password_change")
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            # A password set here is a password change: the same consequences as anywhere else.
            user = self.get_object(request, id)
            services.sign_out_everywhere(user=user)
        return response

    def save_model(self, request, obj, form, change):
        # Unticking "active" by hand is a ban too: it must end sessions the same way.
        banned_here = change and "is_active" in form.changed_data and not obj.is_active
        super().save_model(request, obj, form, change)
        if banned_here:
            services.deactivate_user(user=obj, moderator=request.user)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("created_at", "reason", "target", "reported_user", "reporter", "status", "action_taken")
    list_filter = ("status", "reason", "action_taken", "created_at")
    search_fields = ("reporter__username", "reported_user__username", "note", "message_id")
    list_select_related = ("reporter", "reported_user", "resolved_by")
    readonly_fields = (
        "reporter",
        "target_key",
        "reported_user",
        "message_id",
        "chat_id",
        "reason",
        "note",
        "status",
        "action_taken",
        "created_at",
        "resolved_at",
        "resolved_by",
    )
    actions = ["remove_reported_message", "ban_reported_user", "dismiss"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="About")
    def target(self, report):
        if report.message_id:
            url = reverse("admin:messaging_message", args=[report.message_id])
            return format_html('<a href="{}">message {}</a>', url, report.message_id)
        return "the person"

    @admin.action(description="Remove the reported messages", permissions=["change"])
    def remove_reported_message(self, request, queryset):
        from messaging.services import remove_message

        if not request.user.has_perm("messaging.moderate_messages"):
            self.message_user(request, "You may not remove messages.", messages.ERROR)
            return
        for report in queryset.exclude(message_id=""):
            try:
                remove_message(message_id=report.message_id, moderator=request.user)
            except ApplicationError as error:
                self.message_user(request, f"{report.message_id}: {error.message}", messages.WARNING)
                continue
            self.log_change(request, report, f"Removed message {report.message_id}.")

    @admin.action(description="Ban the reported people", permissions=["change"])
    def ban_reported_user(self, request, queryset):
        if not request.user.has_perm("accounts.ban_user"):
            self.message_user(request, "You may not ban people.", messages.ERROR)
            return
        for report in queryset.select_related("reported_user").exclude(reported_user=None):
            try:
                services.deactivate_user(user=report.reported_user, moderator=request.user)
            except ApplicationError as error:
                self.message_user(request, f"{report.reported_user.username}: {error.message}", messages.WARNING)
                continue
            services.resolve_reports(
                target_key=report.target_key, action=Report.Action.USER_BANNED, moderator=request.user
            )
            self.log_change(request, report.reported_user, "Banned after a report.")

    @admin.action(description="Dismiss", permissions=["change"])
    def dismiss(self, request, queryset):
        for report in queryset.filter(status=Report.Status.OPEN):
            services.resolve_reports(
                target_key=report.target_key, action=Report.Action.DISMISSED, moderator=request.user
            )
            self.log_change(request, report, "Dismissed.")
