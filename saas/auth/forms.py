"""Forms of the identity pages (CSRF comes with FlaskForm)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length, Regexp

_EMAIL_REQUIRED = _l("Saisissez votre adresse électronique.")
_CODE_HINT = _l("Le code comporte 6 chiffres.")


def _code_field() -> StringField:
    return StringField(
        _l("Code à usage unique"),
        validators=[
            InputRequired(message=_l("Saisissez le code affiché par votre application.")),
            Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_CODE_HINT),
        ],
    )


class LoginForm(FlaskForm):
    email = EmailField(_l("Adresse électronique"), validators=[
        InputRequired(message=_EMAIL_REQUIRED), Length(max=254)])
    password = PasswordField(_l("Mot de passe"), validators=[
        InputRequired(message=_l("Saisissez votre mot de passe.")), Length(max=1024)])
    next = HiddenField()


class TotpForm(FlaskForm):
    code = _code_field()


class ForgotForm(FlaskForm):
    email = EmailField(_l("Adresse électronique"), validators=[
        InputRequired(message=_EMAIL_REQUIRED), Length(max=254)])


class ResetForm(FlaskForm):
    password = PasswordField(_l("Nouveau mot de passe"), validators=[
        InputRequired(message=_l("Choisissez un nouveau mot de passe."))])
    confirm = PasswordField(_l("Confirmez le nouveau mot de passe"), validators=[
        InputRequired(message=_l("Saisissez une seconde fois le nouveau mot de passe.")),
        EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("Mot de passe actuel"), validators=[
        InputRequired(message=_l("Saisissez votre mot de passe actuel.")), Length(max=1024)])
    password = PasswordField(_l("Nouveau mot de passe"), validators=[
        InputRequired(message=_l("Choisissez un nouveau mot de passe."))])
    confirm = PasswordField(_l("Confirmez le nouveau mot de passe"), validators=[
        InputRequired(message=_l("Saisissez une seconde fois le nouveau mot de passe.")),
        EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])


class SwitchForm(FlaskForm):
    slug = HiddenField(validators=[InputRequired(), Length(max=40)])
