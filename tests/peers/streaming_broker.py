"""What the local Mastodon's servers share: accounts, tokens and lists (:class:`Directory`),
Redis-like pub/sub (:class:`Broker`) and the asyncio loop the async servers run on."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from tests.peers.entities import account_entity

STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class AccountRecord:
    id: str
    username: str
    entity: dict[str, Any]


@dataclass
class TokenRecord:
    id: int
    token: str
    account_id: str
    scopes: tuple[str, ...]
    revoked: bool = False

    def has_any(self, *scopes: str) -> bool:
        return any(scope in self.scopes for scope in scopes)


class Directory:
    """Accounts and OAuth access tokens, shared by the REST and streaming peers."""

    def __init__(self, domain: str = "kirchner.social") -> None:
        self.domain = domain
        self.accounts: dict[str, AccountRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.lists: dict[str, str] = {}  # list id -> owner account id
        self._ids = itertools.count(1)

    def add_account(self, username: str) -> AccountRecord:
        account_id = str(next(self._ids) + 100)
        record = AccountRecord(account_id, username,
                               account_entity(account_id, username, domain=self.domain))
        self.accounts[account_id] = record
        return record

    def add_token(self, account: AccountRecord, scopes: str = "read write follow push") -> str:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = TokenRecord(next(self._ids), token, account.id, tuple(scopes.split()))
        return token

    def add_list(self, account: AccountRecord) -> str:
        list_id = str(next(self._ids) + 1000)
        self.lists[list_id] = account.id
        return list_id

    def lookup(self, token: str | None) -> TokenRecord | None:
        record = self.tokens.get(token or "")
        return record if record is not None and not record.revoked else None


class Broker:
    """Redis-like pub/sub in memory: ``publish(channel, text)``, ``subscribe(channel, cb)``."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[[str], None]]] = {}
        self._lock = threading.Lock()
        self.published: list[tuple[str, str]] = []

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.setdefault(channel, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._subscribers.get(channel, [])
                if callback in callbacks:
                    callbacks.remove(callback)

        return unsubscribe

    def publish(self, channel: str, message: str) -> int:
        with self._lock:
            callbacks = list(self._subscribers.get(channel, []))
            self.published.append((channel, message))
        for callback in callbacks:
            callback(message)
        return len(callbacks)

    def subscriber_count(self, channel: str) -> int:
        with self._lock:
            return len(self._subscribers.get(channel, []))


class PeerLoop:
    """An asyncio loop in a daemon thread, for servers the tests call synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="peer-loop",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = STOP_TIMEOUT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()
