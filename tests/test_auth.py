"""Tests of the asynchronous authentication and security policy helpers."""

from __future__ import annotations

import asyncio

import pytest
from pyramid.authentication import RemoteUserAuthenticationPolicy
from pyramid.authorization import ACLAuthorizationPolicy, Allow, Authenticated
from pyramid.response import Response
from pyramid.security import forget, remember

from aiopyramid.auth import (
    CoroutineSecurityPolicyProxy,
    authn_policy_factory,
    coroutine_callback_authentication_policy_factory,
)
from tests.harness.inprocess import get, make_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

USERS = {"alice": ["group:admins"], "bob": []}


async def groupfinder(userid, request):
    await asyncio.sleep(0)
    return USERS.get(userid)


class Root:
    __acl__ = [(Allow, "group:admins", "admin"), (Allow, Authenticated, "view")]

    def __init__(self, request):
        pass


def legacy_app():
    async def whoami(request):
        userid = await request.authenticated_userid
        principals = await request.effective_principals
        return Response(f"{userid} {sorted(principals)}")

    def plain_whoami(request):
        return Response(f"{request.authenticated_userid}")

    def setup(config):
        config.set_root_factory(Root)
        config.set_authentication_policy(
            authn_policy_factory(RemoteUserAuthenticationPolicy, groupfinder)
        )
        config.set_authorization_policy(ACLAuthorizationPolicy())
        config.add_view(whoami, name="whoami")
        config.add_view(plain_whoami, name="plain")
        config.add_view(lambda r: Response("admin"), name="admin", permission="admin")

    return make_app(setup)


def test_alias_is_the_same_factory():
    """The long name of the factory is an alias of authn_policy_factory."""
    assert coroutine_callback_authentication_policy_factory is authn_policy_factory


def test_coroutine_callback_from_coroutine_and_plain_views(run):
    """A coroutine callback answers awaited in coroutine views, plain elsewhere."""
    app = legacy_app()
    alice = {"REMOTE_USER": "alice"}
    assert run(get(app, "/whoami", environ=alice)).text == (
        "alice ['alice', 'group:admins', 'system.Authenticated', 'system.Everyone']"
    )
    assert run(get(app, "/plain", environ=alice)).text == "alice"
    assert run(get(app, "/plain", environ={"REMOTE_USER": "mallory"})).text == "None"
    assert run(get(app, "/whoami")).text == "None ['system.Everyone']"


def test_permission_checks_wait_for_the_callback(run):
    """Permission checks in Pyramid's derivers get the callback's groups."""
    app = legacy_app()
    assert run(get(app, "/admin", environ={"REMOTE_USER": "alice"})).status_int == 200
    assert run(get(app, "/admin", environ={"REMOTE_USER": "bob"})).status_int == 403


def test_remember_and_forget_pass_through(run):
    """remember/forget/unauthenticated_userid reach the wrapped policy."""
    policy = authn_policy_factory(RemoteUserAuthenticationPolicy, groupfinder)
    assert policy.remember(None, "alice") == []
    assert policy.forget(None) == []

    class FakeRequest:
        environ = {"REMOTE_USER": "carol"}

    assert policy.unauthenticated_userid(FakeRequest()) == "carol"


class AsyncPolicy:
    """A Pyramid 2 security policy written with coroutines."""

    async def identity(self, request):
        await asyncio.sleep(0)
        user = request.headers.get("X-User")
        return {"userid": user} if user in USERS else None

    async def authenticated_userid(self, request):
        identity = await self.identity(request)
        return identity and identity["userid"]

    async def permits(self, request, context, permission):
        identity = await self.identity(request)
        return identity is not None and permission in (
            "view",
            *USERS[identity["userid"]],
        )

    def remember(self, request, userid, **kw):
        return [("X-Remember", userid)]

    async def forget(self, request, **kw):
        await asyncio.sleep(0)
        return [("X-Forget", "yes")]


def test_security_policy_with_coroutine_methods(run):
    """A coroutine security policy works for derivers, plain and coroutine views."""

    async def me(request):
        identity = await request.identity
        userid = await request.authenticated_userid
        allowed = await request.has_permission("group:admins")
        headers = await remember(request, userid) + await forget(request)
        return Response(f"{identity} {userid} {bool(allowed)} {headers}")

    def plain(request):
        return Response(
            f"{request.authenticated_userid} {bool(request.has_permission('view'))} "
            f"{remember(request, 'x')} {forget(request)}"
        )

    def setup(config):
        config.set_security_policy(CoroutineSecurityPolicyProxy(AsyncPolicy()))
        config.add_view(me, name="me", permission="view")
        config.add_view(plain, name="plain")

    app = make_app(setup)
    alice = {"X-User": "alice"}
    assert run(get(app, "/me", headers=alice)).text == (
        "{'userid': 'alice'} alice True [('X-Remember', 'alice'), ('X-Forget', 'yes')]"
    )
    assert run(get(app, "/me", headers={"X-User": "nobody"})).status_int == 403
    assert run(get(app, "/plain", headers={"X-User": "bob"})).text == (
        "bob True [('X-Remember', 'x')] [('X-Forget', 'yes')]"
    )
