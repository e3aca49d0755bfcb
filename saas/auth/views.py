"""Login, logout, second factor, password reset, account security and the commune switch."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.auth import services, totp
from saas.auth.forms import (
    ForgotForm,
    LoginForm,
    PasswordChangeForm,
    RecoveryCodesForm,
    RecoveryForm,
    ResetForm,
    SwitchForm,
    TotpForm,
)
from saas.auth.passwords import password_problem
from saas.auth.services import Status
from saas.extensions import limiter

bp = Blueprint("auth", __name__, url_prefix="/auth")

INVALID_CREDENTIALS = _l("Adresse électronique ou mot de passe incorrect.")
INVALID_RECOVERY_CODE = _l("Code de secours incorrect ou déjà utilisé. Chaque code ne sert "
                           "qu'une fois.")
INVALID_CODE = _l("Code incorrect ou déjà utilisé. Saisissez le code actuellement affiché "
                  "par votre application.")


def _login_rate() -> str:
    return current_app.config.get("SAAS_LOGIN_RATE_LIMIT", "20 per minute")


def _reset_rate() -> str:
    return current_app.config.get("SAAS_RESET_RATE_LIMIT", "5 per minute; 20 per hour")


def _too_many() -> str:
    return _("Trop de tentatives depuis votre adresse : patientez quelques minutes avant de réessayer.")


login_limit = limiter.limit(_login_rate, methods=["POST"], error_message=_too_many)
reset_limit = limiter.limit(_reset_rate, methods=["POST"], error_message=_too_many)


@bp.before_request
def _identity_hosts_only():
    # Accounts live on a commune's host or on the console; the portal only lists communes.
    if g.get("host_kind") not in ("tenant", "console"):
        return redirect(url_for("web.index"))
    return None


@bp.app_context_processor
def _account_context() -> dict:
    def switch_targets() -> list:
        if not current_user.is_authenticated:
            return []
        here = g.get("tenant")
        return [(t, role) for t, role in services.memberships_of(current_user)
                if here is None or t.id != here.id]

    return {"switch_targets": switch_targets}


def _after_login(next_url: str | None):
    return redirect(services.safe_next(next_url) or url_for("web.index"))


def _second_factor_redirect(outcome):
    if outcome.status == Status.ENROL:
        return redirect(url_for("auth.totp_enrol"))
    return redirect(url_for("auth.totp_verify"))


# --- login / logout ---------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@login_limit
def login():
    if current_user.is_authenticated:
        return _after_login(request.args.get("next"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = services.safe_next(request.args.get("next")) or ""
    error = None
    if form.validate_on_submit():
        next_url = services.safe_next(form.next.data)
        outcome = services.login_with_password(form.email.data, form.password.data, next_url)
        if outcome.status == Status.OK:
            return _after_login(next_url)
        if outcome.status in (Status.SECOND_FACTOR, Status.ENROL):
            return _second_factor_redirect(outcome)
        if outcome.status == Status.LOCKED:
            error = services.describe_lock(outcome.locked_until)
        else:
            error = str(INVALID_CREDENTIALS)
    form.password.data = ""
    form.next.data = services.safe_next(form.next.data) or ""
    return render_template("auth/login.html", form=form, error=error)


@bp.post("/logout")
def logout():
    services.logout()
    flash(_("Vous êtes déconnecté."), "success")
    return redirect(url_for("auth.login"))


# --- second factor ----------------------------------------------------------------------


def _pending_or_restart():
    pending = services.pending_login()
    if pending is None:
        flash(_("Votre connexion a expiré : saisissez à nouveau votre mot de passe."), "info")
    return pending


def _second_step(form_class, verify, invalid, template: str, *, on_success=None,
                 error_status: int = 200):
    """The second step of a login: check a code of `form_class` with `verify(user, state, code)`."""
    pending = _pending_or_restart()
    if pending is None:
        return redirect(url_for("auth.login"))
    user, _role, state = pending
    if state.get("enrol"):
        return redirect(url_for("auth.totp_enrol"))
    form = form_class()
    error = None
    if form.validate_on_submit():
        outcome = verify(user, state, form.code.data)
        if outcome.status == Status.OK:
            if on_success is not None:
                on_success(outcome)
            return _after_login(outcome.next_url)
        if outcome.status == Status.LOCKED:
            flash(services.describe_lock(outcome.locked_until), "error")
            return redirect(url_for("auth.login"))
        error = str(invalid)
    form.code.data = ""
    status = error_status if error or form.errors else 200
    return render_template(template, form=form, error=error), status


@bp.route("/totp", methods=["GET", "POST"])
@login_limit
def totp_verify():
    return _second_step(TotpForm, services.verify_second_factor, INVALID_CODE, "auth/totp.html")


def _recovery_codes_left_notice(outcome) -> None:
    flash(_("Code de secours accepté. Il vous en reste %(n)d : générez-en de nouveaux "
            "depuis « Mon compte » si besoin.", n=outcome.recovery_codes_left), "info")


@bp.route("/totp/recovery", methods=["GET", "POST"])
@login_limit
def totp_recovery():
    """The second step with a recovery code, for someone who lost her phone."""
    return _second_step(RecoveryForm, services.verify_recovery_code, INVALID_RECOVERY_CODE,
                        "auth/recovery.html", on_success=_recovery_codes_left_notice,
                        error_status=422)


def _show_recovery_codes(codes: list[str], next_url: str | None):
    """The codes, once: this response is their only appearance (never cached)."""
    response = current_app.make_response(render_template(
        "auth/recovery_codes.html", codes=codes,
        next_url=services.safe_next(next_url) or url_for("web.index")))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/totp/enrol", methods=["GET", "POST"])
@login_limit
def totp_enrol():
    pending = _pending_or_restart()
    if pending is None:
        return redirect(url_for("auth.login"))
    user, _role, state = pending
    if not state.get("enrol"):
        return redirect(url_for("auth.totp_verify"))
    form = TotpForm()
    error = None
    if form.validate_on_submit():
        outcome = services.confirm_forced_enrolment(user, state, form.code.data)
        if outcome.status == Status.OK:
            flash(_("Double authentification activée."), "success")
            return _show_recovery_codes(outcome.recovery_codes or [], outcome.next_url)
        if outcome.status == Status.LOCKED:
            flash(services.describe_lock(outcome.locked_until), "error")
            return redirect(url_for("auth.login"))
        error = str(INVALID_CODE)
    form.code.data = ""
    return render_template("auth/enrol.html", form=form, error=error, forced=True,
                           **_enrolment_context(user))


def _enrolment_context(user) -> dict:
    secret = services.enrolment_secret()
    uri = totp.provisioning_uri(secret, user.email, issuer=_issuer())
    return {"secret": totp.grouped(secret), "otpauth_uri": uri, "qr_src": totp.qr_svg_data_uri(uri)}


def _issuer() -> str:
    # One secret serves every commune of the account: name the platform, not this commune.
    return f"Mutualis ({current_app.config['SAAS_SETTINGS'].base_domain})"


# --- account and security ---------------------------------------------------------------


def _account_page(**forms):
    return render_template(
        "auth/account.html",
        communes=services.memberships_of(current_user),
        totp_mandatory=services.totp_required_anywhere(current_user),
        disable_form=forms.pop("disable_form", None) or TotpForm(),
        recovery_left=(services.recovery_codes_left(current_user)
                       if current_user.totp_enabled else 0),
        password_form=forms.pop("password_form", None) or PasswordChangeForm(formdata=None),
        **forms,
    )


@bp.get("/account")
@login_required
def account():
    return _account_page()


@bp.post("/account/password")
@login_required
@reset_limit
def account_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        refused = services.change_password(current_user._get_current_object(), form.current.data,
                                           form.password.data)
        if refused is None:
            flash(_("Mot de passe changé. Vos autres sessions ont été fermées."), "success")
            return redirect(url_for("auth.account"))
        name, message = refused
        field = getattr(form, name)
        field.errors = [*field.errors, message]
    for name in ("current", "password", "confirm"):
        getattr(form, name).data = ""  # never echo passwords back into the page
    return _account_page(password_form=form), 422


@bp.route("/account/totp", methods=["GET", "POST"])
@login_required
def account_totp_enable():
    if current_user.totp_enabled:
        return redirect(url_for("auth.account"))
    form = TotpForm()
    error = None
    if form.validate_on_submit():
        codes = services.confirm_optional_enrolment(current_user, form.code.data)
        if codes is not None:
            flash(_("Double authentification activée."), "success")
            return _show_recovery_codes(codes, url_for("auth.account"))
        error = str(INVALID_CODE)
    form.code.data = ""
    return render_template("auth/enrol.html", form=form, error=error, forced=False,
                           **_enrolment_context(current_user))


@bp.post("/account/recovery-codes")
@login_required
def account_recovery_codes():
    form = RecoveryCodesForm()
    if not form.validate_on_submit():
        abort(400)
    codes = services.regenerate_recovery_codes(current_user._get_current_object())
    if codes is None:
        return redirect(url_for("auth.account"))
    flash(_("Nouveaux codes de secours générés : les anciens ne fonctionnent plus."), "success")
    return _show_recovery_codes(codes, url_for("auth.account"))


@bp.post("/account/totp/disable")
@login_required
def account_totp_disable():
    form = TotpForm()
    if not current_user.totp_enabled:
        return redirect(url_for("auth.account"))
    error = None
    if form.validate_on_submit():
        error = services.disable_totp(current_user, form.code.data)
        if error is None:
            flash(_("Double authentification désactivée."), "success")
            return redirect(url_for("auth.account"))
    return _account_page(disable_form=form, disable_error=error), 200


# --- password reset ---------------------------------------------------------------------


@bp.route("/forgot", methods=["GET", "POST"])
@reset_limit
def forgot_password():
    form = ForgotForm()
    if form.validate_on_submit():
        services.request_password_reset(form.email.data)
        return render_template("auth/forgot_sent.html")
    return render_template("auth/forgot.html", form=form)


_TOKEN_ERRORS = {
    "expired": _l("Ce lien a expiré (il est valable une heure). Demandez-en un nouveau."),
    "invalid": _l("Ce lien n'est pas valide. Vérifiez qu'il a été copié en entier, "
                  "ou demandez-en un nouveau."),
    "used": _l("Ce lien a déjà servi. Demandez-en un nouveau si nécessaire."),
}


@bp.route("/reset/<token>", methods=["GET", "POST"])
@reset_limit
def reset_password(token: str):
    user, problem = services.check_reset_token(token)
    if user is None:
        return render_template("auth/reset_invalid.html", message=str(_TOKEN_ERRORS[problem])), 400
    form = ResetForm()
    error = None
    if form.validate_on_submit():
        error = password_problem(form.password.data, email=user.email, name=user.name)
        if error is None:
            if not services.reset_password(user, form.password.data):
                return render_template("auth/reset_invalid.html",
                                       message=str(_TOKEN_ERRORS["used"])), 400
            flash(_("Votre mot de passe a été changé : connectez-vous avec le nouveau."), "success")
            return redirect(url_for("auth.login"))
        form.password.errors = [*form.password.errors, error]
    form.password.data = form.confirm.data = ""
    return render_template("auth/reset.html", form=form, user=user)


# --- invitations ------------------------------------------------------------------------

_INVITATION_ERRORS = {
    "expired": _l("Cette invitation a expiré (elle est valable 7 jours). Demandez à "
                  "l'administrateur de votre commune de vous inviter à nouveau."),
    "invalid": _l("Ce lien d'invitation n'est pas valide. Vérifiez qu'il a été copié en "
                  "entier."),
    "used": _l("Cette invitation a déjà servi : connectez-vous avec votre mot de passe, ou "
               "demandez un lien de réinitialisation."),
}


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@reset_limit
def invitation(token: str):
    from saas.auth import members

    if g.get("host_kind") != "tenant":
        abort(404)
    user, problem = members.check_invitation_token(token)
    if user is None:
        return render_template("auth/reset_invalid.html",
                               message=str(_INVITATION_ERRORS[problem])), 400
    form = ResetForm()
    if form.validate_on_submit():
        error = password_problem(form.password.data, email=user.email, name=user.name)
        if error is None:
            if not members.accept_invitation(user, form.password.data):
                return render_template("auth/reset_invalid.html",
                                       message=str(_INVITATION_ERRORS["used"])), 400
            flash(_("Votre compte est activé : connectez-vous avec votre adresse et votre "
                    "nouveau mot de passe."), "success")
            return redirect(url_for("auth.login"))
        form.password.errors = [*form.password.errors, error]
    form.password.data = form.confirm.data = ""
    status = 422 if form.errors else 200
    return render_template("auth/invitation.html", form=form, user=user), status


# --- commune switch ---------------------------------------------------------------------


@bp.post("/switch")
@login_required
def switch():
    form = SwitchForm()
    if not form.validate_on_submit():
        abort(400)
    target = services.begin_switch(current_user, form.slug.data)
    if target is None:
        abort(404)
    return redirect(target)


@bp.get("/switch/issue")
@login_required
def switch_issue():
    target = services.switch_url(current_user, request.args.get("c", ""))
    if target is None:
        return render_template("auth/handoff_error.html",
                               message=str(_HANDOFF_ERRORS["expired"])), 400
    return redirect(target)


_HANDOFF_ERRORS = {
    "expired": _l("Le lien de changement de commune a expiré : recommencez depuis votre "
                  "commune d'origine."),
    "invalid": _l("Le lien de changement de commune n'est pas valide."),
    "used": _l("Ce lien de changement de commune a déjà servi."),
    "no_access": _l("Votre compte n'a pas accès à cette commune."),
    "other_browser": _l("Ce lien de changement de commune ne fonctionne que dans le navigateur "
                        "qui l'a demandé : recommencez depuis votre commune d'origine."),
}


def _handoff_cookie() -> str:
    # Host-only like the session cookie: another commune's host can neither read nor set it.
    return "__Host-handoff" if current_app.config.get("SESSION_COOKIE_SECURE") else "handoff"


@bp.get("/handoff/begin")
def handoff_begin():
    if g.get("host_kind") != "tenant":
        abort(404)
    step = services.handoff_begin(request.args.get("src", ""))
    if step is None:
        return render_template("auth/handoff_error.html",
                               message=str(_HANDOFF_ERRORS["invalid"])), 400
    url, nonce = step
    response = redirect(url)
    response.set_cookie(_handoff_cookie(), nonce, max_age=services.SWITCH_MAX_AGE * 2, path="/",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                        httponly=True, samesite="Lax")
    return response


@bp.get("/handoff")
def handoff():
    if g.get("host_kind") != "tenant":
        abort(404)
    outcome, problem = services.accept_handoff(request.args.get("token", ""),
                                               request.cookies.get(_handoff_cookie()))
    if problem is not None:
        status = 403 if problem == "no_access" else 400
        return render_template("auth/handoff_error.html",
                               message=str(_HANDOFF_ERRORS[problem])), status
    if outcome.status == Status.LOCKED:
        response = redirect(url_for("auth.login"))
        flash(services.describe_lock(outcome.locked_until), "error")
    elif outcome.status in (Status.SECOND_FACTOR, Status.ENROL):
        response = _second_factor_redirect(outcome)
    else:
        flash(_("Vous êtes connecté à %(commune)s.", commune=g.tenant.name), "success")
        response = redirect(url_for("web.index"))
    response.delete_cookie(_handoff_cookie(), path="/",
                           secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                           httponly=True, samesite="Lax")
    return response
