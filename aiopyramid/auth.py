"""Authentication and security policies whose work is asynchronous.

Pyramid asks its policies for answers as plain function calls, from plain
code (the router, view derivers, ``request.authenticated_userid``).  The
proxies here let those answers come from coroutines:

* called from plain code (a request's greenlet, an executor view), a proxied
  method waits for its coroutine and returns the value, as Pyramid expects;
* called from coroutine code (a coroutine view runs on the loop's greenlet,
  where nothing may wait), it returns an awaitable instead: write
  ``await request.authenticated_userid`` or ``await request.identity``.

Legacy callback-based authentication policies (Pyramid 1.x style, still
supported by Pyramid 2) take a coroutine callback through
:func:`authn_policy_factory`; Pyramid 2 security policies with coroutine
methods are wrapped in :class:`CoroutineSecurityPolicyProxy`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from pyramid.interfaces import IAuthenticationPolicy, ISecurityPolicy
from zope.interface import implementer

from ._bridge import in_loop_greenlet, wait_for
from .helpers import spawn_greenlet, synchronize

__all__ = [
    "CoroutineAuthenticationPolicyProxy",
    "CoroutineSecurityPolicyProxy",
    "authn_policy_factory",
    "coroutine_callback_authentication_policy_factory",
]


def _answer(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    result = method(*args, **kwargs)
    if inspect.isawaitable(result):
        result = wait_for(result, getattr(method, "__qualname__", "a policy method"))
    return result


def _ask(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``method``: a value for plain code, an awaitable for coroutine code."""
    if in_loop_greenlet():
        # Coroutine code may not wait: run the policy in a child greenlet of
        # its own, where its coroutines can be waited for, and hand back a
        # future (awaitable more than once, unlike a coroutine).
        return asyncio.ensure_future(spawn_greenlet(_answer, method, *args, **kwargs))
    return _answer(method, *args, **kwargs)


@implementer(IAuthenticationPolicy)
class CoroutineAuthenticationPolicyProxy:
    """Wrap a legacy authentication policy whose callback is a coroutine.

    Every method of the policy answers plain code with a value and coroutine
    code with an awaitable (as in the original library), so a coroutine view
    writes ``await policy.unauthenticated_userid(request)`` as well as
    ``await request.authenticated_userid``.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def authenticated_userid(self, request: Any) -> Any:
        """The userid the callback accepts."""
        return _ask(self.policy.authenticated_userid, request)

    def effective_principals(self, request: Any) -> Any:
        """The request's principals."""
        return _ask(self.policy.effective_principals, request)

    def unauthenticated_userid(self, request: Any) -> Any:
        """The userid the request claims, without the callback's verdict."""
        return _ask(self.policy.unauthenticated_userid, request)

    def remember(self, request: Any, userid: Any, **kw: Any) -> Any:
        """Headers that remember ``userid``."""
        return _ask(self.policy.remember, request, userid, **kw)

    def forget(self, request: Any, **kw: Any) -> Any:
        """Headers that forget the current user."""
        return _ask(self.policy.forget, request, **kw)


def authn_policy_factory(
    auth_class: Callable[..., Any],
    coroutine: Callable[..., Any] | None = None,
    *args: Any,
    **kwargs: Any,
) -> CoroutineAuthenticationPolicyProxy:
    """Build ``auth_class(*args, callback=..., **kwargs)`` with a coroutine callback.

    ``coroutine(userid, request)`` (named as in the original) may be an
    ``async def`` function (or a legacy generator function); the policy gets
    a synchronized version and the result is wrapped in
    :class:`CoroutineAuthenticationPolicyProxy`::

        policy = authn_policy_factory(AuthTktAuthenticationPolicy, groupfinder,
                                      'secret', hashalg='sha512')
        config.set_authentication_policy(policy)

    Without a callback, ``auth_class(*args, **kwargs)`` is built and wrapped
    as it is (pass a synchronized callback under another keyword yourself if
    the policy names it differently).
    """
    if coroutine is None:
        return CoroutineAuthenticationPolicyProxy(auth_class(*args, **kwargs))
    callback = synchronize(coroutine)
    return CoroutineAuthenticationPolicyProxy(
        auth_class(*args, callback=callback, **kwargs)
    )


coroutine_callback_authentication_policy_factory = authn_policy_factory


@implementer(ISecurityPolicy)
class CoroutineSecurityPolicyProxy:
    """Wrap a Pyramid 2 security policy whose methods may be coroutines.

    ``config.set_security_policy(CoroutineSecurityPolicyProxy(MyPolicy()))``.
    Every method answers plain code with a value and coroutine code with an
    awaitable, whichever way the wrapped method is written.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def identity(self, request: Any) -> Any:
        """The identity of the request's user."""
        return _ask(self.policy.identity, request)

    def authenticated_userid(self, request: Any) -> Any:
        """The userid of the request's user."""
        return _ask(self.policy.authenticated_userid, request)

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        """Whether ``permission`` is granted on ``context``."""
        return _ask(self.policy.permits, request, context, permission)

    def remember(self, request: Any, userid: Any, **kw: Any) -> Any:
        """Headers that remember ``userid``."""
        return _ask(self.policy.remember, request, userid, **kw)

    def forget(self, request: Any, **kw: Any) -> Any:
        """Headers that forget the current user."""
        return _ask(self.policy.forget, request, **kw)
