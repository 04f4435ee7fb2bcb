"""Browser forms: they carry the fields; the services decide what is valid."""

from django import forms

from accounts.models import Theme
from accounts.selectors import LOGIN_MAX_CHARS


class Form(forms.Form):
    """Labels without Django's trailing colon."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SignupForm(Form):
    username = forms.CharField(max_length=30, help_text="3 to 30 letters, digits, underscores or dots.")
    email = forms.EmailField()
    phone_number = forms.CharField(max_length=32, help_text="9 to 15 digits, optionally starting with +.")
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password_confirm = forms.CharField(
        label="Password again", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", "The two passwords differ.")
        return data


class LoginForm(Form):
    login = forms.CharField(
        label="Username, email or phone",
        max_length=LOGIN_MAX_CHARS,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class PasswordChangeForm(Form):
    old_password = forms.CharField(
        label="Current password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    new_password = forms.CharField(
        label="New password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )


class PasswordResetRequestForm(Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class SetPasswordForm(Form):
    new_password = forms.CharField(
        label="New password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )


class ProfileForm(Form):
    username = forms.CharField(max_length=30)
    avatar = forms.FileField(
        required=False,
        help_text="JPEG, PNG, GIF or WebP, at most 5 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/gif,image/webp"}),
    )


class ThemeForm(Form):
    theme = forms.ChoiceField(choices=Theme.choices, widget=forms.RadioSelect)
