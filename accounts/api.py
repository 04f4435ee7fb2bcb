"""JSON API of accounts: validate the wire format, call a service, serialize the result."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.selectors import LOGIN_MAX_CHARS
from chat_realtime.rate_limits import client_ip


class PublicUserSerializer(serializers.Serializer):
    """A user as other people see them: never their email or phone number."""

    id = serializers.IntegerField()
    username = serializers.CharField()
    avatar_url = serializers.CharField(allow_null=True)
    last_seen = serializers.DateTimeField(allow_null=True)


class MeSerializer(PublicUserSerializer):
    email = serializers.EmailField()
    phone_number = serializers.CharField(allow_null=True)
    date_joined = serializers.DateTimeField()


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class SessionSerializer(TokenPairSerializer):
    user = MeSerializer()


def _session(user) -> dict:
    return {"user": MeSerializer(user).data, **services.issue_tokens(user=user)}


class RegisterApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class RegisterInput(serializers.Serializer):
        # Missing fields reach the service as blanks, so every bad field is reported at once.
        username = serializers.CharField(required=False, default="", allow_blank=True)
        email = serializers.CharField(required=False, default="", allow_blank=True)
        phone_number = serializers.CharField(required=False, default="", allow_blank=True)
        password = serializers.CharField(required=False, default="", allow_blank=True, trim_whitespace=False)

    class RegisterBody(serializers.Serializer):
        """What the schema says a sign-up needs: every field (RegisterInput takes them all, to refuse at once)."""

        username = serializers.CharField(help_text="3 to 30 letters, digits, underscores or dots.")
        email = serializers.EmailField()
        phone_number = serializers.CharField(help_text="9 to 15 digits, optionally starting with +.")
        password = serializers.CharField(trim_whitespace=False)

    @extend_schema(request=RegisterBody, responses={201: SessionSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        data = _valid(self.RegisterInput, request)
        user = services.register_user(**data, client_ip=client_ip(request))
        return Response(_session(user), status=status.HTTP_201_CREATED)


class LoginApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class LoginInput(serializers.Serializer):
        login = serializers.CharField(max_length=LOGIN_MAX_CHARS, help_text="Username, email or phone number.")
        password = serializers.CharField(trim_whitespace=False)

    @extend_schema(request=LoginInput, responses={200: SessionSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        data = _valid(self.LoginInput, request)
        user = services.login_user(**data, client_ip=client_ip(request), request=request._request)
        return Response(_session(user))


class RefreshApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class RefreshInput(serializers.Serializer):
        refresh = serializers.CharField()

    @extend_schema(request=RefreshInput, responses={200: TokenPairSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        data = _valid(self.RefreshInput, request)
        return Response(services.rotate_refresh_token(refresh=data["refresh"]))


class LogoutApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class LogoutInput(serializers.Serializer):
        refresh = serializers.CharField()

    @extend_schema(request=LogoutInput, responses={204: None}, auth=[])
    def post(self, request: Request) -> Response:
        data = _valid(self.LogoutInput, request)
        services.revoke_refresh_token(refresh=data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeApi(APIView):
    class PasswordChangeInput(serializers.Serializer):
        old_password = serializers.CharField(trim_whitespace=False)
        new_password = serializers.CharField(trim_whitespace=False)

    @extend_schema(request=PasswordChangeInput, responses={200: TokenPairSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(self.PasswordChangeInput, request)
        services.change_password(user=request.user, **data)
        # Every refresh token was revoked, this client's too: hand it a fresh pair.
        return Response(services.issue_tokens(user=request.user))


class PasswordResetApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class PasswordResetInput(serializers.Serializer):
        email = serializers.CharField(max_length=LOGIN_MAX_CHARS)

    @extend_schema(request=PasswordResetInput, responses={202: None}, auth=[])
    def post(self, request: Request) -> Response:
        data = _valid(self.PasswordResetInput, request)
        services.request_password_reset(
            email=data["email"], site_url=request.build_absolute_uri("/"), client_ip=client_ip(request)
        )
        return Response(status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class PasswordResetConfirmInput(serializers.Serializer):
        uid = serializers.CharField()
        token = serializers.CharField()
        new_password = serializers.CharField(trim_whitespace=False)

    @extend_schema(request=PasswordResetConfirmInput, responses={204: None}, auth=[])
    def post(self, request: Request) -> Response:
        data = _valid(self.PasswordResetConfirmInput, request)
        services.reset_password(**data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    class MeUpdate(serializers.Serializer):
        username = serializers.CharField(required=False)
        email = serializers.CharField(required=False)
        phone_number = serializers.CharField(required=False)
        avatar = serializers.FileField(required=False, help_text="JPEG, PNG, GIF or WebP, at most 5 MB.")

    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)

    @extend_schema(request=MeUpdate, responses={200: MeSerializer})
    def patch(self, request: Request) -> Response:
        data = _valid(self.MeUpdate, request)
        user = services.update_profile(user=request.user, **data)
        return Response(MeSerializer(user).data)


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class ReportApi(APIView):
    class ReportInput(serializers.Serializer):
        message_id = serializers.CharField(required=False, max_length=64)
        user_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
        reason = serializers.CharField(max_length=20)
        note = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")

    class ReportOutput(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()

    @extend_schema(request=ReportInput, responses={201: ReportOutput})
    def post(self, request: Request) -> Response:
        data = _valid(self.ReportInput, request)
        made = services.report(reporter=request.user, **data)
        return Response({"id": made.pk, "status": made.status}, status=status.HTTP_201_CREATED)
