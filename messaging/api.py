"""JSON API of chats and messages."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import PublicUserSerializer
from messaging import events, selectors, services


class MessageSerializer(serializers.Serializer):
    id = serializers.CharField()
    chat_id = serializers.IntegerField()
    sender_id = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True)
    image_url = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    client_id = serializers.CharField()
    deleted = serializers.BooleanField()


class LastMessageSerializer(MessageSerializer):
    preview = serializers.CharField(allow_blank=True)


class ChatSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    is_group = serializers.BooleanField()
    name = serializers.CharField(allow_blank=True)
    participants = PublicUserSerializer(many=True)
    last_message = LastMessageSerializer(allow_null=True)
    unread_count = serializers.IntegerField()


class ChatListOutput(serializers.Serializer):
    results = ChatSerializer(many=True)


class MessagePageOutput(serializers.Serializer):
    results = MessageSerializer(many=True)
    next_before = serializers.CharField(allow_null=True)
    next_after = serializers.CharField(allow_null=True)


def chat_data(summary: selectors.ChatSummary) -> dict:
    return {
        "id": summary.chat.pk,
        "is_group": summary.chat.is_group,
        "name": summary.chat.name,
        "participants": [PublicUserSerializer(u).data for u in summary.participants],
        "last_message": events.last_message_data(summary.last_message),
        "unread_count": summary.unread_count,
    }


class ChatListApi(APIView):
    @extend_schema(responses={200: ChatListOutput})
    def get(self, request: Request) -> Response:
        return Response({"results": [chat_data(s) for s in selectors.chat_summaries(request.user)]})


class StringField(serializers.CharField):
    """A string as it was sent. DRF's CharField turns a JSON number into text; the service, and the websocket
    that reaches it without a serializer, refuse anything but a string."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ChatMessagesApi(APIView):
    class HistoryQuery(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=selectors.HISTORY_LIMIT_MAX, default=30)
        # Blank is let through to be refused by the selector (DRF would read it as absent).
        before = serializers.CharField(required=False, allow_blank=True, max_length=64)
        after = serializers.CharField(required=False, allow_blank=True, max_length=64)

    class SendInput(serializers.Serializer):
        text = StringField(required=False, allow_blank=True, trim_whitespace=False, default="")
        # Compared exactly, as on the websocket: the service refuses what is not 1-64 of its characters.
        client_id = StringField(max_length=64, trim_whitespace=False)
        image = serializers.FileField(required=False, help_text="JPEG, PNG, GIF or WebP, at most 5 MB.")

    @extend_schema(parameters=[HistoryQuery], responses={200: MessagePageOutput})
    def get(self, request: Request, chat_id: int) -> Response:
        serializer = self.HistoryQuery(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        query = serializer.validated_data
        page = selectors.history(
            user=request.user,
            chat_id=chat_id,
            before=query.get("before"),
            after=query.get("after"),
            limit=query["limit"],
        )
        return Response(
            {
                "results": [events.message_data(m) for m in page.messages],
                "next_before": page.next_before,
                "next_after": page.next_after,
            }
        )

    @extend_schema(request=SendInput, responses={201: MessageSerializer})
    def post(self, request: Request, chat_id: int) -> Response:
        serializer = self.SendInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        sent = services.send_message(
            sender=request.user,
            chat_id=chat_id,
            text=data.get("text"),
            client_id=data["client_id"],
            image=data.get("image"),
        )
        return Response(events.message_data(sent.message), status=status.HTTP_201_CREATED)


class ChatReadApi(APIView):
    class ReadInput(serializers.Serializer):
        message_id = serializers.CharField(max_length=64)

    @extend_schema(request=ReadInput, responses={204: None})
    def post(self, request: Request, chat_id: int) -> Response:
        serializer = self.ReadInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.mark_read(user=request.user, chat_id=chat_id, message_id=serializer.validated_data["message_id"])
        return Response(status=status.HTTP_204_NO_CONTENT)
