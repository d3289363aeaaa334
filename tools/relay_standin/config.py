# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in's YAML configuration: schema, defaults and validation.

See docs/relay-standin.md for the schema.  Relative paths are resolved
against the directory of the config file.  Unknown keys are errors, so a
typo never silently turns a rule off.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import yaml

from .engine import allowlist, constants, limits
from .faults import FaultConfigError, FaultRule, parse_faults
from .ledger import Windows
from .quota import Quota
from .wire import LAYOUT_MULTILINE, LAYOUTS

# Listener name -> the service port it stands in for.
SERVICE_PORTS: Dict[str, int] = {"smtp": constants.PORT_SMTP, "smtps": constants.PORT_IMPLICIT_TLS,
                                 "submission": constants.PORT_SUBMISSION}
IMPLICIT_TLS_LISTENERS = frozenset({"smtps"})
DEFAULT_HOSTNAME = "relay.smarthost.test"
DEFAULT_LISTEN = ("0.0.0.0", "::")
# What Google's SMTP servers advertise as SIZE.
DEFAULT_MAX_MESSAGE_SIZE = 35882577
# Generous enough that ordinary scenarios never meet a customer limit (peak
# 9,000 recipients per 10 minutes); tests of the limits set their own.
DEFAULT_LICENSES = 1000
# Google's relay takes at most 100 recipients in one SMTP transaction (Google's relay errors article, answer 6140680).
DEFAULT_MAX_RECIPIENTS_PER_TRANSACTION = 100
# Denial-of-service protection (see docs/relay-standin.md for why these numbers): more than 60 new connections
# from one client address within 60 seconds (one a second on average) are answered 421 4.7.0 at HELO.
DEFAULT_DOS_MAX_NEW_CONNECTIONS = 60
DEFAULT_DOS_WINDOW_SECONDS = 60.0

_TOP_KEYS = {
    "hostname", "listen", "ports", "tls", "require_tls", "auth_required", "allowlist", "users",
    "allowed_senders", "domains", "licenses", "paid", "limits", "clock_offset_seconds",
    "max_message_size", "idle_timeout_seconds", "record", "mail_dir", "faults", "reply_layout", "dos", "restart_epoch",
    "helo_fqdn_required",
}
_LIMIT_KEYS = {"daily_window_seconds", "peak_window_seconds", "max_recipients_per_transaction"}
_DOS_KEYS = {"max_new_connections", "window_seconds", "generic_helo", "generic_helo_names"}


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class DosSettings:
    """Denial-of-service protection, answered at HELO/EHLO with ``421 4.7.0 Try again later, closing
    connection`` and the connection closed: more than ``max_new_connections`` new connections from one client
    address within ``window_seconds`` (None: no burst limit), or (``generic_helo``) a generic HELO name
    (``localhost``, the relay's own names, ``generic_helo_names``)."""

    max_new_connections: Optional[int] = DEFAULT_DOS_MAX_NEW_CONNECTIONS
    window_seconds: float = DEFAULT_DOS_WINDOW_SECONDS
    generic_helo: bool = True
    generic_helo_names: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """One loaded configuration (immutable; a reload makes a new one)."""

    hostname: str = DEFAULT_HOSTNAME
    listen: Tuple[str, ...] = DEFAULT_LISTEN
    ports: Mapping[str, Optional[int]] = field(default_factory=lambda: dict(SERVICE_PORTS))
    tls_cert: Optional[Path] = None
    tls_key: Optional[Path] = None
    require_tls: bool = False
    auth_required: bool = False
    allowlist: Tuple[str, ...] = ()
    allowlist_networks: Any = None  # engine AllowedRanges (or networks), None when empty
    users: Mapping[str, str] = field(default_factory=dict)
    allowed_senders: str = constants.SENDERS_DOMAINS
    domains: Tuple[str, ...] = ()
    licenses: int = DEFAULT_LICENSES
    paid: bool = True
    quota: Optional[Quota] = None
    max_recipients_per_transaction: Optional[int] = DEFAULT_MAX_RECIPIENTS_PER_TRANSACTION
    clock_offset_seconds: float = 0.0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    idle_timeout_seconds: float = 300.0
    record: Optional[Path] = None
    mail_dir: Optional[Path] = None
    faults: Tuple[FaultRule, ...] = ()
    reply_layout: str = LAYOUT_MULTILINE
    dos: DosSettings = field(default_factory=DosSettings)
    helo_fqdn_required: bool = False
    # Changing it restarts the relay as far as clients can tell: every open connection is closed (an outage,
    # a deploy). Tests of a client that keeps connections open set a new value to make it reconnect.
    restart_epoch: int = 0

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @property
    def tls_required(self) -> bool:
        """"Require SMTP Authentication" checks "Require TLS" as well."""
        return self.require_tls or self.auth_required

    def listeners(self) -> Dict[str, int]:
        """Listener name -> listen port, for the listeners that are on."""
        return {name: port for name, port in self.ports.items() if port is not None}


def _fail(message: str) -> ConfigError:
    return ConfigError(message)


def _bool(data: Mapping, key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise _fail("%s must be true or false, got %r" % (key, value))
    return value


def _number(data: Mapping, key: str, default: float, minimum: Optional[float] = 0.0, integer: bool = False):
    value = data.get(key, default)
    if value is None and default is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or (minimum is not None and value < minimum):
        kind = "a whole number" if integer else "a number"
        raise _fail("%s must be %s%s, got %r" % (key, kind, "" if minimum is None else " >= %s" % minimum, value))
    return value


def _string_list(data: Mapping, key: str, default: Tuple[str, ...]) -> Tuple[str, ...]:
    value = data.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail("%s must be a list of strings, got %r" % (key, value))
    return tuple(v.strip() for v in value)


def _path(value: Any, key: str, base: Path) -> Optional[Path]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail("%s must be a file path, got %r" % (key, value))
    path = Path(os.path.expanduser(value.strip()))
    return path if path.is_absolute() else (base / path)


def _ports(value: Any) -> Dict[str, Optional[int]]:
    ports: Dict[str, Optional[int]] = dict(SERVICE_PORTS)
    if value is None:
        return ports
    if not isinstance(value, dict):
        raise _fail("ports must be a mapping of smtp/smtps/submission to a port number (or null)")
    for name, port in value.items():
        if name not in SERVICE_PORTS:
            raise _fail("ports: unknown listener %r (use smtp, smtps, submission)" % (name,))
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            raise _fail("ports.%s must be a port number 0-65535 or null, got %r" % (name, port))
        ports[name] = port
    return ports


def _users(value: Any) -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail("users must be a mapping of user name to password")
    users = {}
    for name, password in value.items():
        if not isinstance(name, str) or not name.strip() or password is None:
            raise _fail("users: every entry needs a user name and a password")
        users[name.strip()] = str(password)
    return users


def _allowlist(entries: Tuple[str, ...]) -> Any:
    """The ranges compiled for fast lookups (None when empty); a range the
    Admin console would refuse (syntax, more than 65,536 addresses) is a
    config error."""
    if not entries:
        return None
    report = allowlist.check_allowlist(list(entries))
    if report.errors:
        raise _fail("allowlist: " + "; ".join(finding.message for finding in report.errors))
    networks = report.networks()
    compiled = getattr(allowlist, "AllowedRanges", None)
    return compiled(networks) if compiled else tuple(networks)


def _quota(data: Mapping, licenses: int, paid: bool) -> Tuple[Quota, Optional[int]]:
    section = data.get("limits") or {}
    if not isinstance(section, dict):
        raise _fail("limits must be a mapping")
    unknown = set(section) - _LIMIT_KEYS
    if unknown:
        raise _fail("limits: unknown key(s) %s" % ", ".join(sorted(unknown)))
    try:
        values = limits.sending_limits(licenses, paid)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    windows = Windows(
        daily_seconds=_number(section, "daily_window_seconds", values["daily_window_seconds"], minimum=0.001),
        peak_seconds=_number(section, "peak_window_seconds", values["peak_window_seconds"], minimum=0.001),
    )
    per_transaction = DEFAULT_MAX_RECIPIENTS_PER_TRANSACTION
    if "max_recipients_per_transaction" in section:  # null: no cap (kinder than Google: for tests only)
        per_transaction = _number(section, "max_recipients_per_transaction", None, minimum=1, integer=True)
    return Quota(values, windows), per_transaction


def _dos(value: Any) -> DosSettings:
    if value is None:
        return DosSettings()
    if not isinstance(value, dict):
        raise _fail("dos must be a mapping (max_new_connections, window_seconds, generic_helo, generic_helo_names)")
    unknown = set(value) - _DOS_KEYS
    if unknown:
        raise _fail("dos: unknown key(s) %s" % ", ".join(sorted(unknown)))
    maximum = DEFAULT_DOS_MAX_NEW_CONNECTIONS
    if "max_new_connections" in value:  # null: no burst limit
        maximum = _number(value, "max_new_connections", None, minimum=1, integer=True)
    names = _string_list(value, "generic_helo_names", ())
    return DosSettings(
        max_new_connections=maximum,
        window_seconds=float(_number(value, "window_seconds", DEFAULT_DOS_WINDOW_SECONDS, minimum=0.001)),
        generic_helo=_bool(value, "generic_helo", True),
        generic_helo_names=tuple(name.lower().rstrip(".") for name in names),
    )


def settings_from_mapping(data: Any, base_dir: Path) -> Settings:
    """Validate a parsed config document into ``Settings``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail("the configuration must be a YAML mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail("unknown key(s): %s" % ", ".join(sorted(unknown)))
    tls = data.get("tls") or {}
    if not isinstance(tls, dict) or set(tls) - {"cert", "key"}:
        raise _fail("tls must be a mapping with cert and key")
    cert, key = _path(tls.get("cert"), "tls.cert", base_dir), _path(tls.get("key"), "tls.key", base_dir)
    if (cert is None) != (key is None):
        raise _fail("tls needs both cert and key")
    mode = data.get("allowed_senders", constants.SENDERS_DOMAINS)
    if mode not in constants.SENDER_MODES:
        raise _fail("allowed_senders must be one of %s, got %r" % (", ".join(constants.SENDER_MODES), mode))
    licenses = _number(data, "licenses", DEFAULT_LICENSES, minimum=1, integer=True)
    paid = _bool(data, "paid", True)
    quota, per_transaction = _quota(data, licenses, paid)
    entries = _string_list(data, "allowlist", ())
    hostname = data.get("hostname", DEFAULT_HOSTNAME)
    if not isinstance(hostname, str) or not hostname.strip() or " " in hostname.strip():
        raise _fail("hostname must be a host name, got %r" % (hostname,))
    try:
        faults = tuple(parse_faults(data.get("faults")))
    except FaultConfigError as exc:
        raise _fail(str(exc)) from exc
    layout = data.get("reply_layout", LAYOUT_MULTILINE)
    if layout not in LAYOUTS:
        raise _fail("reply_layout must be one of %s, got %r" % (", ".join(LAYOUTS), layout))
    settings = Settings(
        hostname=hostname.strip(),
        listen=_string_list(data, "listen", DEFAULT_LISTEN),
        ports=_ports(data.get("ports")),
        tls_cert=cert,
        tls_key=key,
        require_tls=_bool(data, "require_tls", False),
        auth_required=_bool(data, "auth_required", False),
        allowlist=entries,
        allowlist_networks=_allowlist(entries),
        users=_users(data.get("users")),
        allowed_senders=mode,
        domains=_string_list(data, "domains", ()),
        licenses=licenses,
        paid=paid,
        quota=quota,
        max_recipients_per_transaction=per_transaction,
        clock_offset_seconds=_number(data, "clock_offset_seconds", 0.0, minimum=None),
        max_message_size=_number(data, "max_message_size", DEFAULT_MAX_MESSAGE_SIZE, minimum=1, integer=True),
        idle_timeout_seconds=_number(data, "idle_timeout_seconds", 300.0, minimum=0.1),
        record=_path(data.get("record"), "record", base_dir),
        mail_dir=_path(data.get("mail_dir"), "mail_dir", base_dir),
        faults=faults,
        reply_layout=layout,
        dos=_dos(data.get("dos")),
        helo_fqdn_required=_bool(data, "helo_fqdn_required", False),
        restart_epoch=_number(data, "restart_epoch", 0, minimum=0, integer=True),
    )
    if settings.tls_required and not settings.tls_enabled:
        raise _fail("require_tls/auth_required need tls.cert and tls.key")
    if settings.ports.get("smtps") is not None and not settings.tls_enabled:
        raise _fail("ports.smtps (implicit TLS) needs tls.cert and tls.key; set it to null to turn it off")
    return settings


def load_settings(path: Path) -> Settings:
    """Read and validate the config file at ``path``."""
    return _load_with_digest(Path(path))[0]


def _load_with_digest(path: Path) -> Tuple[Settings, str]:
    """The settings and the SHA-256 of the bytes they were read from."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail("cannot read %s: %s" % (path, exc)) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail("%s is not UTF-8: %s" % (path, exc)) from exc
    return _settings_from_text(text, path), hashlib.sha256(raw).hexdigest()


def _settings_from_text(text: str, path: Path) -> Settings:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail("%s is not valid YAML: %s" % (path, exc)) from exc
    return settings_from_mapping(data, path.resolve().parent)


@dataclass
class ConfigSource:
    """The config file plus change detection (mtime, size, inode)."""

    path: Path
    _stamp: Optional[Tuple[int, int, int]] = None
    # SHA-256 of the file the current settings came from: what a writer waits to see in the status file.
    digest: Optional[str] = None

    def _current_stamp(self) -> Optional[Tuple[int, int, int]]:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def changed(self) -> bool:
        stamp = self._current_stamp()
        return stamp is not None and stamp != self._stamp

    def load(self) -> Settings:
        stamp = self._current_stamp()
        settings, digest = _load_with_digest(self.path)
        self._stamp, self.digest = stamp, digest
        return settings

    def mark_seen(self) -> None:
        """Remember the current file state even if loading it failed, so a
        broken file is reported once, not at every connection."""
        self._stamp = self._current_stamp()
