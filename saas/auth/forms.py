"""Forms of the identity pages (CSRF comes with FlaskForm)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import EqualTo, InputRequired, Length, Regexp

_EMAIL_REQUIRED = _l("Saisissez votre adresse électronique.")
_FORBIDDEN_CHARACTER = _l("Ce champ contient un caractère non autorisé.")
# NUL cannot be stored by PostgreSQL nor typed by a person; the other C0 controls (tab, line
# breaks aside) have no place in an address, a password, a code or a slug either.
_CONTROL = {chr(n) for n in range(32)} - {"\t", "\n", "\r"}


class IdentityForm(FlaskForm):
    """Every identity form: a field holding a control character is an error of that field.

    Checked before the field validators, so no such value reaches a query or a hash.
    """

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            data = field.data
            if isinstance(data, str) and not _CONTROL.isdisjoint(data):
                field.data = data.translate({ord(c): None for c in _CONTROL})
                field.errors = [*field.errors, str(_FORBIDDEN_CHARACTER)]
                valid = False
        return valid

_CODE_HINT = _l("Le code comporte 6 chiffres.")


def _code_field() -> StringField:
    return StringField(
        _l("Code à usage unique"),
        validators=[
            InputRequired(message=_l("Saisissez le code affiché par votre application.")),
            Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_CODE_HINT),
        ],
    )


class LoginForm(IdentityForm):
    email = EmailField(_l("Adresse électronique"), validators=[
        InputRequired(message=_EMAIL_REQUIRED), Length(max=254)])
    password = PasswordField(_l("Mot de passe"), validators=[
        InputRequired(message=_l("Saisissez votre mot de passe.")), Length(max=1024)])
    next = HiddenField()


class TotpForm(IdentityForm):
    code = _code_field()


class RecoveryForm(IdentityForm):
    code = StringField(_l("Code de secours"), validators=[
        InputRequired(message=_l("Saisissez un de vos codes de secours.")), Length(max=40)])


class RecoveryCodesForm(IdentityForm):
    """Regenerate one's recovery codes (CSRF only)."""


class ForgotForm(IdentityForm):
    email = EmailField(_l("Adresse électronique"), validators=[
        InputRequired(message=_EMAIL_REQUIRED), Length(max=254)])


class ResetForm(IdentityForm):
    password = PasswordField(_l("Nouveau mot de passe"), validators=[
        InputRequired(message=_l("Choisissez un nouveau mot de passe."))])
    confirm = PasswordField(_l("Confirmez le nouveau mot de passe"), validators=[
        InputRequired(message=_l("Saisissez une seconde fois le nouveau mot de passe.")),
        EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])


class PasswordChangeForm(IdentityForm):
    current = PasswordField(_l("Mot de passe actuel"), validators=[
        InputRequired(message=_l("Saisissez votre mot de passe actuel.")), Length(max=1024)])
    password = PasswordField(_l("Nouveau mot de passe"), validators=[
        InputRequired(message=_l("Choisissez un nouveau mot de passe."))])
    confirm = PasswordField(_l("Confirmez le nouveau mot de passe"), validators=[
        InputRequired(message=_l("Saisissez une seconde fois le nouveau mot de passe.")),
        EqualTo("password", message=_l("Les deux mots de passe ne sont pas identiques."))])


class SwitchForm(IdentityForm):
    slug = HiddenField(validators=[InputRequired(), Length(max=40)])


def _role_choices():
    from saas.auth.models import ROLE_LABELS

    return [(role.value, label) for role, label in ROLE_LABELS.items()]


class InviteForm(IdentityForm):
    email = EmailField(_l("Adresse électronique"), validators=[
        InputRequired(message=_l("Saisissez l'adresse électronique de la personne.")),
        Length(max=254)])
    name = StringField(_l("Nom et prénom"), validators=[Length(max=200)])
    role = SelectField(_l("Rôle"), choices=_role_choices, default="agent",
                       validate_choice=True)


class RoleForm(IdentityForm):
    role = SelectField(_l("Rôle"), choices=_role_choices, validate_choice=True)


class MemberActionForm(IdentityForm):
    """Deactivate, reset a second factor (CSRF only)."""
