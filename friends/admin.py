"""Moderators' view of friendships and notifications.

Friendships are changed through the services only, so the admin can look and
remove (which ends the friendship the same way unfriending does), not edit.
"""

from django.contrib import admin

from friends import services
from friends.models import Friendship, Notification


@admin.register(Friendship)
class FriendshipAdmin(admin.ModelAdmin):
    list_display = ("id", "user_low", "user_high", "requester", "status", "created_at", "accepted_at")
    list_filter = ("status", "created_at")
    search_fields = ("user_low__username", "user_high__username")
    list_select_related = ("user_low", "user_high", "requester")
    readonly_fields = ("user_low", "user_high", "requester", "status", "created_at", "accepted_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        services.remove_friendship(obj)

    def delete_queryset(self, request, queryset):
        for friendship in queryset:
            services.remove_friendship(friendship)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "receiver", "sender", "type", "is_read", "created_at")
    list_filter = ("type", "is_read", "created_at")
    search_fields = ("receiver__username", "sender__username", "content")
    list_select_related = ("receiver", "sender")
    raw_id_fields = ("receiver", "sender")
