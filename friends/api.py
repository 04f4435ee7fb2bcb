"""JSON API of friends, user search and notifications."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import PublicUserSerializer
from friends import events, selectors, services
from friends.overview import friend_overview
from messaging.events import last_message_data


class FriendSerializer(serializers.Serializer):
    user = PublicUserSerializer()
    chat_id = serializers.IntegerField(allow_null=True)
    last_message = serializers.JSONField(allow_null=True)
    unread_count = serializers.IntegerField()
    online = serializers.BooleanField()
    last_seen = serializers.DateTimeField(allow_null=True)


class FriendListOutput(serializers.Serializer):
    results = FriendSerializer(many=True)


class FriendRequestSerializer(serializers.Serializer):
    user = PublicUserSerializer()
    created_at = serializers.DateTimeField()


class FriendRequestsOutput(serializers.Serializer):
    incoming = FriendRequestSerializer(many=True)
    outgoing = FriendRequestSerializer(many=True)


class FriendRequestSentOutput(serializers.Serializer):
    user = PublicUserSerializer()
    friendship = serializers.ChoiceField(choices=["outgoing", "friends"])
    chat_id = serializers.IntegerField(allow_null=True)


class AcceptOutput(serializers.Serializer):
    chat_id = serializers.IntegerField()
    friend = PublicUserSerializer()


class SearchResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    avatar_url = serializers.CharField(allow_null=True)
    friendship = serializers.ChoiceField(choices=["none", "friends", "outgoing", "incoming"])


class PageQuery(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, default=1)
    page_size = serializers.IntegerField(min_value=1, default=20)


def _page_output(
    result_serializer: type[serializers.Serializer], name: str, **more: serializers.Field
) -> type[serializers.Serializer]:
    """The schema of a page of results (and of `more` fields that come with it)."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "results": result_serializer(many=True),
            "count": serializers.IntegerField(),
            "page": serializers.IntegerField(),
            "pages": serializers.IntegerField(),
            **more,
        },
    )


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _body(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class FriendListApi(APIView):
    @extend_schema(responses={200: FriendListOutput})
    def get(self, request: Request) -> Response:
        results = [
            {
                "user": PublicUserSerializer(entry.user).data,
                "chat_id": entry.chat_id,
                "last_message": last_message_data(entry.last_message),
                "unread_count": entry.unread_count,
                "online": entry.online,
                "last_seen": entry.user.last_seen,
            }
            for entry in friend_overview(request.user)
        ]
        return Response(FriendListOutput({"results": results}).data)


class FriendRequestsApi(APIView):
    class FriendRequestInput(serializers.Serializer):
        user_id = serializers.IntegerField()

    @extend_schema(responses={200: FriendRequestsOutput})
    def get(self, request: Request) -> Response:
        incoming, outgoing = selectors.friend_requests(request.user)
        return Response(FriendRequestsOutput({"incoming": incoming, "outgoing": outgoing}).data)

    @extend_schema(request=FriendRequestInput, responses={201: FriendRequestSentOutput})
    def post(self, request: Request) -> Response:
        data = _body(self.FriendRequestInput, request)
        outcome = services.send_friend_request(sender=request.user, receiver_id=data["user_id"])
        body = {
            "user": outcome.other,
            "friendship": "friends" if outcome.chat else "outgoing",
            "chat_id": outcome.chat.pk if outcome.chat else None,
        }
        return Response(FriendRequestSentOutput(body).data, status=status.HTTP_201_CREATED)


class FriendRequestAcceptApi(APIView):
    @extend_schema(request=None, responses={200: AcceptOutput})
    def post(self, request: Request, user_id: int) -> Response:
        _, chat, friend = services.accept_friend_request(receiver=request.user, requester_id=user_id)
        return Response(AcceptOutput({"chat_id": chat.pk, "friend": friend}).data)


class FriendRequestRejectApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, user_id: int) -> Response:
        services.reject_friend_request(receiver=request.user, requester_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FriendRequestCancelApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, user_id: int) -> Response:
        services.cancel_friend_request(requester=request.user, receiver_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UnfriendApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, user_id: int) -> Response:
        services.unfriend(user=request.user, friend_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserSearchApi(APIView):
    class SearchQuery(PageQuery):
        q = serializers.CharField(allow_blank=True, max_length=254, default="")

    SearchOutput = _page_output(SearchResultSerializer, "UserSearchOutput")

    @extend_schema(parameters=[SearchQuery], responses={200: SearchOutput})
    def get(self, request: Request) -> Response:
        query = _query(self.SearchQuery, request)
        page = selectors.search_users(
            viewer=request.user, query=query["q"], page=query["page"], page_size=query["page_size"]
        )
        states = selectors.friendship_states(request.user.pk, [person.pk for person in page.items])
        results = [
            {"id": p.pk, "username": p.username, "avatar_url": p.avatar_url, "friendship": states[p.pk]}
            for p in page.items
        ]
        return Response({"results": results, "count": page.count, "page": page.page, "pages": page.pages})


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    sender = PublicUserSerializer(allow_null=True)
    content = serializers.CharField()
    is_read = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class NotificationListApi(APIView):
    class NotificationQuery(PageQuery):
        unread = serializers.BooleanField(default=False)

    NotificationPage = _page_output(
        NotificationSerializer,
        "NotificationPage",
        unread_count=serializers.IntegerField(help_text="Unread notifications in all (the bell's badge)."),
    )

    @extend_schema(
        parameters=[NotificationQuery, OpenApiParameter("unread", bool)],
        responses={200: NotificationPage},
    )
    def get(self, request: Request) -> Response:
        query = _query(self.NotificationQuery, request)
        page = selectors.notifications_for(
            user=request.user, unread_only=query["unread"], page=query["page"], page_size=query["page_size"]
        )
        return Response(
            {
                "results": [events.notification_data(n) for n in page.items],
                "count": page.count,
                "page": page.page,
                "pages": page.pages,
                "unread_count": selectors.unread_notification_count(request.user),
            }
        )


class NotificationReadApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, notification_id: int) -> Response:
        services.mark_notification_read(user=request.user, notification_id=notification_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationReadAllApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        services.mark_all_notifications_read(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationDeleteApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, notification_id: int) -> Response:
        services.delete_notification(user=request.user, notification_id=notification_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
