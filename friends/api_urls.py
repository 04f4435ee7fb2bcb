from django.urls import path

from friends import api

urlpatterns = [
    path("friends", api.FriendListApi.as_view(), name="friends"),
    path("friends/requests", api.FriendRequestsApi.as_view(), name="friend_requests"),
    path("friends/requests/<id:user_id>/accept", api.FriendRequestAcceptApi.as_view(), name="accept"),
    path("friends/requests/<id:user_id>/reject", api.FriendRequestRejectApi.as_view(), name="reject"),
    path("friends/requests/<id:user_id>", api.FriendRequestCancelApi.as_view(), name="cancel"),
    path("friends/<id:user_id>", api.UnfriendApi.as_view(), name="unfriend"),
    path("users/search", api.UserSearchApi.as_view(), name="user_search"),
    path("notifications", api.NotificationListApi.as_view(), name="notifications"),
    path("notifications/read-all", api.NotificationReadAllApi.as_view(), name="notifications_read_all"),
    path("notifications/<id:notification_id>/read", api.NotificationReadApi.as_view(), name="notification_read"),
    path("notifications/<id:notification_id>", api.NotificationDeleteApi.as_view(), name="notification"),
]
