"""Login, logout, second factor, password reset, commune switch (placeholder: being built)."""

from flask import Blueprint, abort

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.route("/login", methods=["GET", "POST"])
def login():
    abort(501)


@bp.post("/logout")
def logout():
    abort(501)
