# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SMTP relay guard for smarthost.relay: a loopback proxy between an MTA and its smart host.

The MTA (Sendmail, qmail) talks plain SMTP to this guard; for each of its connections the guard
opens one connection to the relay (TLS with certificate verification, optional SMTP AUTH, the
MTA's own EHLO/HELO name), then passes the session through one to one. Reply lines from the relay
go through rewrite rules (Postfix regexp-table syntax), so that a 550 the relay really means as
"try again tomorrow" (Google's daily sending limits) reaches the MTA as a 450: the MTA defers
and retries instead of bouncing.

    python3 smarthost_relay_guard.py --config /etc/smarthost-relay-guard/guard.json
    python3 smarthost_relay_guard.py --check --config /etc/smarthost-relay-guard/guard.json

Python 3.8+, standard library only. Logs one line per event to stderr.
"""

import argparse
import base64
# socket imports this on first use; after the drop to `user` the standard library may be out of reach
import encodings.idna  # noqa: F401  pylint: disable=unused-import
import ipaddress
import itertools
import json
import logging
import os
import pwd
import re
import selectors
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time

LOG = logging.getLogger("smarthost_relay_guard")
LOG.setLevel(logging.INFO)

TLS_MODES = ("required", "implicit", "opportunistic", "none")
DEFAULT_TIMEOUTS = {"connect": 30, "reply": 300}
TOP_KEYS = ("listen", "relay", "auth", "rewrites", "timeouts", "user")
LISTEN_KEYS = ("address", "port")
RELAY_KEYS = ("host", "port", "tls", "verify", "ca_file", "address")
AUTH_KEYS = ("username", "password")
REWRITE_KEYS = ("pattern", "replacement")
HIDDEN_CAPABILITIES = ("STARTTLS", "AUTH")

CRLF = b"\r\n"
MAX_LINE = 65536
MAX_REPLY_LINES = 200
MAX_REPLY_TEXT = 400
HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
REPLY_LINE = re.compile(r"^[1-5][0-9][0-9](?:[ -]|$)")
ENHANCED_STATUS = re.compile(r"^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?= |$)")
# $1, ${1}, $(1) and $$, as in a Postfix regexp table's result text
POSTFIX_REFERENCE = re.compile(r"\$(?:(\$)|([0-9]+)|\{([0-9]+)\}|\(([0-9]+)\))")


class ConfigError(ValueError):
    """The configuration cannot be used; the message starts with the key at fault."""


class Refusal(Exception):
    """End the session: tell the client ``lines``, log ``message``; ``quit_relay``: say QUIT to the relay
    first (not after a failed TLS handshake: such a relay gets nothing but the handshake)."""

    def __init__(self, lines, message, quit_relay=True):
        super().__init__(message)
        self.lines = lines
        self.message = message
        self.quit_relay = quit_relay

    @classmethod
    def because(cls, status, problem, quit_relay=True):
        """The client gets ``status`` (e.g. "421 4.4.2") and the ``problem`` that is logged."""
        return cls(["%s %s" % (status, problem)], problem, quit_relay)


# ---- configuration -----------------------------------------------------------------------------

def _key(parent, name):
    return "%s.%s" % (parent, name) if parent else name


def _kind(value):
    return "null" if value is None else type(value).__name__


def _mapping(value, key, known, required=()):
    if not isinstance(value, dict):
        raise ConfigError("%s: must be a mapping, got %s" % (key or "config", _kind(value)))
    for name in sorted(value, key=str):
        if name not in known:
            raise ConfigError("%s: unknown key (known: %s)" % (_key(key, name), ", ".join(known)))
    for name in required:
        if value.get(name) is None:
            raise ConfigError("%s: missing" % _key(key, name))
    return value


def _text(value, key, allow_empty=False):
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ConfigError("%s: must be a non-empty string, got %s" % (key, _kind(value)))
    if any(char in value for char in "\r\n\0"):
        raise ConfigError("%s: must not contain CR, LF or NUL" % key)
    return value


def _integer(value, key, lowest, highest):
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise ConfigError("%s: must be a whole number from %d to %d, got %r" % (key, lowest, highest, value))
    return value


def _seconds(value, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86400:
        raise ConfigError("%s: must be a number of seconds above 0, got %r" % (key, value))
    return value


def _boolean(value, key):
    if not isinstance(value, bool):
        raise ConfigError("%s: must be true or false, got %r" % (key, value))
    return value


def _ip_address(value, key):
    try:
        return str(ipaddress.ip_address(_text(value, key)))
    except ValueError:
        raise ConfigError("%s: must be an IPv4 or IPv6 address, got %r" % (key, value)) from None


def _listen(value):
    _mapping(value, "listen", LISTEN_KEYS, required=LISTEN_KEYS)
    return {"address": _ip_address(value["address"], "listen.address"),
            "port": _integer(value["port"], "listen.port", 0, 65535)}


def _relay(value):
    _mapping(value, "relay", RELAY_KEYS, required=("host",))
    host = _text(value["host"], "relay.host")
    if not HOSTNAME.match(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError("relay.host: not a host name or IP address: %r" % host) from None
    tls = value.get("tls", "required")
    if tls not in TLS_MODES:
        raise ConfigError("relay.tls: must be one of %s, got %r" % (", ".join(TLS_MODES), tls))
    port = value.get("port")
    if port is None:
        port = 465 if tls == "implicit" else 587
    ca_file = value.get("ca_file")
    if ca_file is not None and not os.path.isfile(_text(ca_file, "relay.ca_file")):
        raise ConfigError("relay.ca_file: no such file: %s" % ca_file)
    address = value.get("address")
    return {"host": host,
            "port": _integer(port, "relay.port", 1, 65535),
            "tls": tls,
            "verify": _boolean(value.get("verify", True), "relay.verify"),
            "ca_file": ca_file,
            "address": None if address is None else _ip_address(address, "relay.address")}


def _auth(value):
    if value is None:
        return None
    _mapping(value, "auth", AUTH_KEYS, required=AUTH_KEYS)
    return {"username": _text(value["username"], "auth.username"),
            "password": _text(value["password"], "auth.password")}


def _timeouts(value):
    if value is None:
        return dict(DEFAULT_TIMEOUTS)
    _mapping(value, "timeouts", tuple(DEFAULT_TIMEOUTS))
    return {name: _seconds(value.get(name, default), "timeouts." + name)
            for name, default in DEFAULT_TIMEOUTS.items()}


def _user(value):
    if value is None:
        return None
    try:
        pwd.getpwnam(_text(value, "user"))
    except KeyError:
        raise ConfigError("user: no such user: %s" % value) from None
    return value


def validate_config(data):
    """The configuration with its defaults filled in; raises ConfigError. Idempotent."""
    _mapping(data, "", TOP_KEYS, required=("listen", "relay"))
    rewrites = [] if data.get("rewrites") is None else data["rewrites"]
    compile_rewrites(rewrites)
    return {"listen": _listen(data["listen"]),
            "relay": _relay(data["relay"]),
            "auth": _auth(data.get("auth")),
            "rewrites": [dict(rule) for rule in rewrites],
            "timeouts": _timeouts(data.get("timeouts")),
            "user": _user(data.get("user"))}


def load_config(path):
    """Read and validate the JSON configuration at ``path``; raises ConfigError."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ConfigError("config: cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise ConfigError("config: not valid JSON: %s" % exc) from None
    return validate_config(data)


def tls_context(relay, verify):
    """A client context for the relay: TLS 1.2 or later; ``verify``: certificate and host name checked
    against ``ca_file`` (or the system's store)."""
    if verify:
        try:
            context = ssl.create_default_context(cafile=relay["ca_file"])
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("relay.ca_file: cannot load %s: %s" % (relay["ca_file"], exc)) from None
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


# ---- rewrites ----------------------------------------------------------------------------------

class RewriteRule:
    """One compiled rule: ``regex`` and ``template`` (for ``match.expand``)."""

    def __init__(self, pattern, regex, template):
        self.pattern = pattern
        self.regex = regex
        self.template = template

    def __repr__(self):
        return "RewriteRule(%r -> %r)" % (self.pattern, self.template)


def _python_template(replacement, groups, key):
    """Postfix result text ($1, ${1}, $(1), $$) as a Python template (\\g<1>)."""
    parts = []
    position = 0
    for reference in POSTFIX_REFERENCE.finditer(replacement):
        parts.append(replacement[position:reference.start()].replace("\\", "\\\\"))
        dollar, *numbers = reference.groups()
        if dollar:
            parts.append("$")
        else:
            number = int(next(n for n in numbers if n is not None))
            if number > groups:
                raise ConfigError("%s: refers to group %d, the pattern has %d" % (key, number, groups))
            parts.append("\\g<%d>" % number)
        position = reference.end()
    parts.append(replacement[position:].replace("\\", "\\\\"))
    return "".join(parts)


def compile_rewrites(rules):
    """Compile the ``rewrites`` list; raises ConfigError naming the rule's key.

    Matching is case-sensitive (Python ``re``), unlike a Postfix table line without flags."""
    if not isinstance(rules, list):
        raise ConfigError("rewrites: must be a list, got %s" % _kind(rules))
    compiled = []
    for index, rule in enumerate(rules):
        key = "rewrites[%d]" % index
        _mapping(rule, key, REWRITE_KEYS, required=REWRITE_KEYS)
        pattern = _text(rule["pattern"], key + ".pattern")
        replacement = _text(rule["replacement"], key + ".replacement", allow_empty=True)
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError("%s.pattern: not a valid regular expression: %s" % (key, exc)) from None
        template = _python_template(replacement, regex.groups, key + ".replacement")
        compiled.append(RewriteRule(pattern, regex, template))
    return compiled


def rewrite_line(line, compiled):
    """``line`` (without CRLF) after the first matching rule, as a Postfix regexp table does: the
    rule's result text replaces the whole line. Unchanged when no rule matches."""
    for rule in compiled:
        match = rule.regex.search(line)
        if match:
            return match.expand(rule.template)
    return line


def _status(line):
    """(reply code, enhanced status code or None) of a reply line."""
    enhanced = ENHANCED_STATUS.match(line[4:])
    return line[:3], enhanced.group(1) if enhanced else None


def rewrite_reply(lines, compiled):
    """Each line through ``rewrite_line``; a result that is no longer a reply line with the same
    continuation mark is dropped (the line stays as it was). When rules changed only some lines of
    a multi-line reply, the other lines that had the same code take over the new code (and enhanced
    status code): clients read the code from one line only, and a 450 on the first line with 550 on
    the last would still bounce."""
    rewritten = []
    for line in lines:
        new = rewrite_line(line, compiled)
        rewritten.append(new if keeps_reply_shape(line, new) else line)
    changed = [index for index, line in enumerate(lines) if rewritten[index] != line]
    if not changed or len(changed) == len(lines):
        return rewritten
    old_code, old_enhanced = _status(lines[changed[0]])
    new_code, new_enhanced = _status(rewritten[changed[0]])
    for index, line in enumerate(lines):
        code, enhanced = _status(line)
        if index in changed or code != old_code:
            continue
        text = line[4:]
        if enhanced and enhanced == old_enhanced and new_enhanced:
            text = new_enhanced + text[len(enhanced):]
        rewritten[index] = new_code + line[3:4] + text
    return rewritten


def keeps_reply_shape(original, rewritten):
    """A rewritten line must still be a reply line with the same continuation mark."""
    return bool(REPLY_LINE.match(rewritten)) and rewritten[3:4] == original[3:4]


# ---- SMTP pieces -------------------------------------------------------------------------------

class LineTooLong(Exception):
    """A peer sent a line longer than MAX_LINE."""


class LineReader:
    """Lines (CRLF or bare LF) from a socket; bytes read past the last line stay in ``buffer``."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()

    def read_line(self, deadline=None):
        """The next line without its line end, or None at end of stream. Past ``deadline`` (a
        time.monotonic() value; None: wait forever) raises socket.timeout."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buffer) > MAX_LINE:
                raise LineTooLong()
            self.sock.settimeout(_remaining(deadline))
            data = self.sock.recv(16384)
            if not data:
                return None
            self.buffer += data

    def take(self):
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _remaining(deadline):
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout("timed out")
    return remaining


def decode(data):
    return data.decode("utf-8", "surrogateescape")


def encode(text):
    return text.encode("utf-8", "surrogateescape")


class Reply:
    """A relay reply: its lines (str, without line ends) and the code of its last line."""

    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])

    def summary(self):
        texts = " ".join(line[4:].strip() for line in self.lines)
        return ("%d %s" % (self.code, texts)).strip()[:MAX_REPLY_TEXT]

    def capabilities(self):
        """EHLO keywords (upper case) with their parameters, from the lines after the first."""
        found = []
        for line in self.lines[1:]:
            words = line[4:].split()
            if words:
                found.append([words[0].upper()] + words[1:])
        return found


def is_final_line(line):
    return line[3:4] != "-"


def hides_capability(text):
    """STARTTLS and AUTH are the guard's business with the relay, not the client's."""
    words = text.split()
    keyword = words[0].upper() if words else ""
    return keyword in HIDDEN_CAPABILITIES or keyword.startswith("AUTH=")


def client_ehlo_lines(lines):
    """The relay's EHLO reply for the client: the first line kept, STARTTLS and AUTH lines left out,
    the continuation marks set again so that only the last line has a space."""
    code = lines[0][:3]
    texts = [lines[0][4:]] + [line[4:] for line in lines[1:] if not hides_capability(line[4:])]
    last = len(texts) - 1
    return ["%s%s%s" % (code, " " if index == last else "-", text) for index, text in enumerate(texts)]


def auth_mechanisms(reply):
    mechanisms = set()
    for words in reply.capabilities():
        if words[0] == "AUTH":
            mechanisms.update(word.upper() for word in words[1:])
        elif words[0].startswith("AUTH="):
            mechanisms.update(word.upper() for word in [words[0][5:]] + words[1:])
    return mechanisms


def b64(text):
    return base64.b64encode(encode(text)).decode("ascii")


def describe_error(exc):
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate verification failed: %s" % (exc.verify_message or exc.reason or exc)
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Redactor:
    """Takes the password (plain and in its AUTH encodings) out of log lines and replies."""

    def __init__(self, auth):
        self.secrets = []
        if auth:
            password = auth["password"]
            candidates = [password, repr(password)[1:-1], b64(password),
                          b64("\0%s\0%s" % (auth["username"], password))]
            self.secrets = sorted(set(candidates), key=len, reverse=True)

    def __call__(self, text):
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text


# ---- one client session ------------------------------------------------------------------------

class Session:
    """One client connection and its relay connection, in the thread socketserver gives it."""

    def __init__(self, guard, client, peer, number):
        self.guard = guard
        self.relay_config = guard.config["relay"]
        self.timeouts = guard.config["timeouts"]
        self.auth = guard.config["auth"]
        self.client = client
        _no_delay(client)
        self.client_reader = LineReader(client)
        self.relay = None
        self.relay_reader = None
        self.relay_tls = False
        self.connect_deadline = None
        self.peer = peer
        self.prefix = "[%d]" % number
        where = "%s:%d" % (self.relay_config["host"], self.relay_config["port"])
        if self.relay_config["address"]:
            where += " (%s)" % self.relay_config["address"]
        self.where = where

    def log(self, message, *args, level=logging.INFO):
        text = self.guard.redact(message % args if args else message)
        LOG.log(level, "%s %s", self.prefix, text.replace("\r", "\\r").replace("\n", "\\n"))

    def run(self):
        self.log("connect from %s", _format_address(self.peer))
        outcome = "done"
        try:
            self.connect_relay()
            self.pass_greeting()
            hello = self.wait_for_hello()
            if hello is None:
                outcome = "client quit before EHLO/HELO"
                return
            self.handshake(*hello)
            outcome = self.pass_through()
        except Refusal as refusal:
            outcome = "refused"
            self.log("%s", refusal.message, level=logging.WARNING)
            self.end_with(refusal)
        except Exception as exc:  # pylint: disable=broad-except  # one session's trouble, not the guard's
            outcome = "error"
            self.log("error: %s: %s", type(exc).__name__, describe_error(exc), level=logging.WARNING)
        finally:
            _close(self.relay)
            _close(self.client)
            self.log("close (%s)", outcome)

    def end_with(self, refusal):
        try:
            self.send_client(refusal.lines)
        except OSError:
            pass
        if refusal.quit_relay:
            self.quit_relay()

    # -- the relay connection --

    def connect_relay(self):
        config = self.relay_config
        deadline = time.monotonic() + self.timeouts["connect"]
        target = (config["address"] or config["host"], config["port"])
        try:
            self.relay = socket.create_connection(target, timeout=self.timeouts["connect"])
            _no_delay(self.relay)
        except OSError as exc:
            raise Refusal.because("421 4.4.1", "relay %s unreachable: %s" % (self.where, describe_error(exc)),
                                  quit_relay=False) from None
        self.log("relay %s connected", self.where)
        if config["tls"] == "implicit":
            self.start_tls(deadline)
        self.relay_reader = LineReader(self.relay)
        self.connect_deadline = deadline

    def start_tls(self, deadline):
        """TLS on the relay socket; any failure ends the session without another byte to the relay."""
        config = self.relay_config
        verify = config["verify"] and config["tls"] != "opportunistic"
        context = self.guard.verifying_context if verify else self.guard.trusting_context
        try:
            self.relay.settimeout(_remaining(deadline))
            self.relay = context.wrap_socket(self.relay, server_hostname=config["host"])
        except (OSError, ValueError) as exc:
            problem = describe_error(exc)
            if not problem.startswith("certificate"):
                problem = "TLS handshake failed: " + problem
            raise Refusal.because("421 4.7.0", "relay %s %s" % (self.where, problem), quit_relay=False) from None
        self.relay_tls = True
        version, cipher = self.relay.version(), (self.relay.cipher() or ("?",))[0]
        checked = "certificate verified for %s" % config["host"] if verify else "certificate NOT verified"
        self.log("relay TLS %s %s, %s", version, cipher, checked)

    def read_relay_reply(self, deadline):
        lines = []
        while True:
            try:
                raw = self.relay_reader.read_line(deadline)
            except socket.timeout:
                raise Refusal.because("421 4.4.2", "relay %s did not answer in time" % self.where) from None
            except LineTooLong:
                raise Refusal.because("421 4.4.2", "relay %s sent an overlong line" % self.where) from None
            except OSError as exc:
                raise self.connection_failed(exc) from None
            if raw is None:
                raise Refusal.because("421 4.4.2", "relay %s closed the connection" % self.where, quit_relay=False)
            line = decode(raw)
            if not REPLY_LINE.match(line):
                raise Refusal(["421 4.4.2 relay %s sent a malformed reply" % self.where],
                              "relay %s sent a malformed reply: %r" % (self.where, line[:100]))
            lines.append(line)
            if is_final_line(line) or len(lines) >= MAX_REPLY_LINES:
                return Reply(lines)

    def relay_command(self, command):
        """Send one command line to the relay and return its reply."""
        try:
            self.relay.settimeout(self.timeouts["reply"])
            self.relay.sendall(encode(command) + CRLF)
        except OSError as exc:
            raise self.connection_failed(exc) from None
        return self.read_relay_reply(time.monotonic() + self.timeouts["reply"])

    def connection_failed(self, exc):
        return Refusal.because("421 4.4.2", "connection to relay %s failed: %s" % (self.where, describe_error(exc)),
                               quit_relay=False)

    def quit_relay(self):
        """Best effort: the relay's answer to QUIT changes nothing."""
        if self.relay is None:
            return
        try:
            self.relay.settimeout(2)
            self.relay.sendall(b"QUIT" + CRLF)
        except OSError:
            pass

    # -- the client side --

    def send_client(self, lines):
        self.client.sendall(b"".join(encode(self.guard.redact(line)) + CRLF for line in lines))

    def relay_lines_for_client(self, lines):
        """Relay reply lines after the rewrites; every change (and every refused one) is logged."""
        rewritten = rewrite_reply(lines, self.guard.rewrites)
        for line, new in zip(lines, rewritten):
            if new != line:
                self.log("rewrite: %r -> %r", line, new)
                continue
            refused = rewrite_line(line, self.guard.rewrites)
            if refused != line:
                self.log("rewrite of %r gave %r, not a reply line of the same shape: kept the original",
                         line, refused, level=logging.WARNING)
        return rewritten

    def pass_greeting(self):
        reply = self.read_relay_reply(self.connect_deadline)
        lines = self.relay_lines_for_client(reply.lines)
        if reply.code != 220:
            raise Refusal(lines, "relay %s greeted with %s" % (self.where, reply.summary()))
        self.send_client(lines)

    def wait_for_hello(self):
        """Answer the client until it says EHLO or HELO: (verb, name), or None when it leaves."""
        while True:
            try:
                raw = self.client_reader.read_line(time.monotonic() + self.timeouts["reply"])
            except socket.timeout:
                raise Refusal.because("421 4.4.2", "timeout waiting for EHLO or HELO") from None
            except LineTooLong:
                raise Refusal(["500 5.5.2 Line too long"], "client sent an overlong line") from None
            if raw is None:
                self.quit_relay()
                return None
            verb, _space, argument = decode(raw).strip().partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                if argument.split():
                    return verb, argument.split()[0]
                self.send_client(["501 5.5.4 Syntax: %s hostname" % verb])
            elif verb == "QUIT":
                self.send_client(["221 2.0.0 Bye"])
                self.quit_relay()
                return None
            elif verb in ("NOOP", "RSET"):
                self.send_client(["250 2.0.0 OK"])
            else:
                self.send_client(["503 5.5.1 Send EHLO or HELO first"])

    # -- the handshake with the relay, on the client's EHLO/HELO --

    def handshake(self, verb, name):
        ehlo = self.relay_ehlo(name)
        mode = self.relay_config["tls"]
        if mode in ("required", "opportunistic"):
            ehlo = self.relay_starttls(name, ehlo, required=mode == "required")
        if self.auth:
            self.authenticate(ehlo)
        if verb == "EHLO":
            self.send_client(self.relay_lines_for_client(client_ehlo_lines(ehlo.lines)))
        else:
            self.send_client(["250 %s" % ehlo.lines[0][4:]])

    def relay_ehlo(self, name):
        # always EHLO upstream, also for a HELO client: STARTTLS and AUTH need it
        reply = self.relay_command("EHLO " + name)
        if not 200 <= reply.code < 300:
            raise Refusal(self.relay_lines_for_client(reply.lines),
                          "relay %s answered EHLO with %s" % (self.where, reply.summary()))
        return reply

    def relay_starttls(self, name, ehlo, required):
        offered = any(words[0] == "STARTTLS" for words in ehlo.capabilities())
        if not offered:
            if required:
                raise Refusal.because("421 4.7.0", "relay %s does not offer STARTTLS" % self.where)
            self.log("relay %s does not offer STARTTLS: going on without TLS", self.where)
            return ehlo
        reply = self.relay_command("STARTTLS")
        if reply.code != 220:
            if required:
                raise Refusal.because("421 4.7.0", "relay %s refused STARTTLS: %s" % (self.where, reply.summary()))
            self.log("relay %s refused STARTTLS (%s): going on without TLS", self.where, reply.summary())
            return ehlo
        if self.relay_reader.buffer:
            # bytes sent before the handshake would count as sent inside TLS (CVE-2011-0411 style)
            raise Refusal.because("421 4.7.0", "relay %s sent data after its STARTTLS reply" % self.where,
                                  quit_relay=False)
        self.start_tls(time.monotonic() + self.timeouts["connect"])
        self.relay_reader = LineReader(self.relay)
        return self.relay_ehlo(name)

    def authenticate(self, ehlo):
        username = self.auth["username"]
        if not self.relay_tls:
            raise Refusal.because("421 4.7.0",
                                  "refusing to send SMTP AUTH credentials to relay %s without TLS" % self.where)
        mechanisms = auth_mechanisms(ehlo)
        if "PLAIN" in mechanisms:
            mechanism = "PLAIN"
            reply = self.relay_command("AUTH PLAIN " + b64("\0%s\0%s" % (username, self.auth["password"])))
        elif "LOGIN" in mechanisms:
            mechanism = "LOGIN"
            reply = self.relay_command("AUTH LOGIN")
            if reply.code == 334:
                reply = self.relay_command(b64(username))
            if reply.code == 334:
                reply = self.relay_command(b64(self.auth["password"]))
        else:
            raise Refusal(["421 4.7.0 relay %s offers neither AUTH PLAIN nor AUTH LOGIN" % self.where],
                          "relay %s offers neither AUTH PLAIN nor AUTH LOGIN (offered: %s)"
                          % (self.where, " ".join(sorted(mechanisms)) or "none"))
        if reply.code != 235:
            self.log("AUTH %s failed for %s: %s", mechanism, username, reply.summary(), level=logging.WARNING)
            raise Refusal([self.guard.redact("421 4.7.0 relay refused SMTP AUTH: %s" % reply.summary())],
                          "relay %s refused SMTP AUTH" % self.where)
        self.log("AUTH %s ok for %s", mechanism, username)

    # -- pass-through --

    def pass_through(self):
        """Client bytes to the relay as they come; relay replies to the client, whole replies, after the
        rewrites. One thread serves both directions with a selector: an SSL socket must not be read
        and written by two threads at once (OpenSSL objects are not thread-safe)."""
        self.client.settimeout(None)
        forwarder = ReplyForwarder(self)
        pending = self.client_reader.take()
        if pending:
            self.send_relay(pending)
        forwarder.feed(self.relay_reader.take())
        with selectors.DefaultSelector() as selector:
            selector.register(self.client, selectors.EVENT_READ, "client")
            selector.register(self.relay, selectors.EVENT_READ, "relay")
            while True:
                if self.relay_tls and self.relay.pending():
                    ready = ["relay"]
                else:
                    ready = [key.data for key, _events in selector.select()]
                for side in ready:
                    if side == "client":
                        data = self.client.recv(65536)
                        if not data:
                            return "client closed"
                        self.send_relay(data)
                    else:
                        data = self.receive_relay()
                        if data == b"":
                            forwarder.flush()
                            if forwarder.last_code == 221:
                                return "quit"
                            if forwarder.last_code != 421:
                                self.tell_client_relay_closed()
                            return "relay closed"
                        if data:
                            forwarder.feed(data)

    def tell_client_relay_closed(self):
        # a 421 is allowed at any time and makes the MTA defer whatever it was waiting for
        try:
            self.send_client(["421 4.4.2 relay %s closed the connection" % self.where])
        except OSError:
            pass

    def send_relay(self, data):
        self.relay.settimeout(None)
        self.relay.sendall(data)

    def receive_relay(self):
        """Bytes from the relay; b"" at its end; None when nothing (but TLS records) came."""
        # non-blocking: a readable TLS socket may carry only a session ticket, no data
        self.relay.settimeout(0.0)
        try:
            return self.relay.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None


class ReplyForwarder:
    """Relay bytes to the client: collected into whole replies, rewritten, sent."""

    def __init__(self, session):
        self.session = session
        self.buffer = bytearray()
        self.lines = []
        self.last_code = None

    def feed(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            raw = bytes(self.buffer[:end])
            del self.buffer[:end + 1]
            self.add(decode(raw[:-1] if raw.endswith(b"\r") else raw))
        if len(self.buffer) > MAX_LINE:
            self.flush()

    def add(self, line):
        if not REPLY_LINE.match(line):
            # Handed on, it could read as a 5xx to the MTA (qmail-remote computes the code from any three bytes)
            # and bounce a message the relay may have taken: the session ends with a 421 instead.
            raise Refusal.because("421 4.4.2", "relay %s sent a line that is not an SMTP reply: %r"
                                  % (self.session.where, line[:80]), quit_relay=False)
        self.lines.append(line)
        if is_final_line(line) or len(self.lines) >= MAX_REPLY_LINES:
            self.send_reply()

    def send_reply(self):
        if self.lines:
            self.last_code = int(self.lines[-1][:3])
            self.session.send_client(self.session.relay_lines_for_client(self.lines))
            self.lines = []

    def flush(self):
        """Whatever is left, as a line of its own (a relay that closes or sends an endless line)."""
        if self.buffer:
            self.add(decode(bytes(self.buffer)))
            self.buffer.clear()
        self.send_reply()


def _no_delay(sock):
    """Each command and reply goes out at once. With Nagle's algorithm a small write waits for the peer's
    (delayed) ACK of the one before: measured, Sendmail through the guard sent 6.4 messages a second instead of 20."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _close(sock):
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _format_address(address):
    host, port = address[0], address[1]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


# ---- the listener ------------------------------------------------------------------------------

class _Listener(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, guard):
        self.guard = guard
        self.address_family = socket.AF_INET6 if ipaddress.ip_address(address[0]).version == 6 else socket.AF_INET
        socketserver.TCPServer.__init__(self, address, socketserver.BaseRequestHandler)

    def finish_request(self, request, client_address):
        self.guard.serve_client(request, client_address)

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        LOG.error("unexpected error with %s: %s", client_address, self.guard.redact(describe_error(error)))


class Guard:
    """The relay guard: binds its listener at creation; ``serve_forever()`` until ``shutdown()``."""

    def __init__(self, config):
        self.config = validate_config(config)
        self.rewrites = compile_rewrites(self.config["rewrites"])
        self.verifying_context = tls_context(self.config["relay"], verify=True) \
            if self.config["relay"]["verify"] and self.config["relay"]["tls"] in ("required", "implicit") else None
        self.trusting_context = tls_context(self.config["relay"], verify=False)
        self.redact = Redactor(self.config["auth"])
        self._numbers = itertools.count(1)
        self._clients = set()
        self._lock = threading.Lock()
        self._serving = False
        listen = self.config["listen"]
        self._server = _Listener((listen["address"], listen["port"]), self)

    @property
    def server_address(self):
        return self._server.server_address[:2]

    def serve_forever(self, poll_interval=0.5):
        self._serving = True
        try:
            self._server.serve_forever(poll_interval)
        finally:
            self._serving = False

    def shutdown(self):
        """Stop accepting and close the listener; open sessions are cut (their client sockets shut)."""
        if self._serving:
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve_client(self, client, peer):
        with self._lock:
            self._clients.add(client)
            number = next(self._numbers)
        try:
            Session(self, client, peer, number).run()
        finally:
            with self._lock:
                self._clients.discard(client)


# ---- command line ------------------------------------------------------------------------------

class _Terminated(Exception):
    """SIGTERM arrived."""


def _terminate(signum, frame):  # pylint: disable=unused-argument
    raise _Terminated()


def log_handler(stream=None):
    """The handler main() logs with: one line per event, no decoration (the journal adds it)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def drop_privileges(user):
    """Become ``user`` (its primary group, no supplementary groups) when running as root."""
    if not user or os.geteuid() != 0:
        return False
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    return True


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the JSON configuration file")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit (0 good, 2 bad)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        tls_context(config["relay"], verify=config["relay"]["verify"])
    except ConfigError as exc:
        sys.stderr.write("smarthost_relay_guard: %s: %s\n" % (args.config, exc))
        return 2
    if args.check:
        return 0
    LOG.addHandler(log_handler())
    LOG.propagate = False
    try:
        guard = Guard(config)
    except OSError as exc:
        LOG.error("cannot listen on %s: %s", _format_address((config["listen"]["address"], config["listen"]["port"])),
                  describe_error(exc))
        return 1
    try:
        if drop_privileges(config["user"]):
            LOG.info("running as user %s", config["user"])
    except (OSError, KeyError) as exc:
        LOG.error("cannot become user %s: %s", config["user"], describe_error(exc))
        return 1
    relay = config["relay"]
    LOG.info("listening on %s, relay %s:%d (tls %s%s), %d rewrite rule(s)",
             _format_address(guard.server_address), relay["host"], relay["port"], relay["tls"],
             "" if relay["verify"] or relay["tls"] in ("none", "opportunistic") else ", not verified",
             len(guard.rewrites))
    signal.signal(signal.SIGTERM, _terminate)
    try:
        guard.serve_forever()
    except (_Terminated, KeyboardInterrupt):
        LOG.info("stopping")
    finally:
        guard.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
