# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets kept out of a result, as ``no_log`` keeps them out of a module's: every text that holds one is masked."""

from __future__ import annotations

from . import constants as C


def secret_texts(value):
    """The texts a secret value can show up as: each string (or number) inside it, and the value as text."""
    if value is None or isinstance(value, bool):
        return set()
    if isinstance(value, dict):
        texts = set().union(*(secret_texts(item) for item in value.values())) if value else set()
    elif isinstance(value, (list, tuple, set)):
        texts = set().union(*(secret_texts(item) for item in value)) if value else set()
    else:
        texts = set()
    texts.add(value if isinstance(value, str) else str(value))
    return {text for text in texts if text}


def secrets_in(mapping, names):
    """The secret texts of the ``names`` keys of ``mapping`` (a role's variables, say); none when it is no dict."""
    if not isinstance(mapping, dict):
        return set()
    return set().union(*(secret_texts(mapping[name]) for name in names if name in mapping))


def mask(value, secrets):
    """``value`` with every secret replaced by the mask, in every string of a nested structure, keys included.

    Longest first, so that a secret containing another is masked whole."""
    ordered = sorted((s for s in secrets if s), key=len, reverse=True)
    return _mask(value, ordered) if ordered else value


def _mask(value, ordered):
    if isinstance(value, dict):
        return {_mask(key, ordered): _mask(item, ordered) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(item, ordered) for item in value]
    if isinstance(value, str):
        for secret in ordered:
            value = value.replace(secret, C.SECRET_MASK)
    return value


def mask_fields(mapping, names):
    """``mapping`` with the value of each of ``names`` that is set replaced by the mask (the fields themselves are
    the secrets; nothing else in ``mapping`` is touched)."""
    if not isinstance(mapping, dict):
        return mapping
    return {key: (C.SECRET_MASK if key in names and value not in (None, "") else value) for key, value in mapping.items()}


def mask_values(value, secrets):
    """``value`` with every string that IS a secret (not merely contains one) replaced by the mask, in a nested
    structure: for data that is used, where a password that is part of a longer text must not change it (numbers
    stay: a count of 0 is no password "0")."""
    if isinstance(value, dict):
        return {key: mask_values(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_values(item, secrets) for item in value]
    return C.SECRET_MASK if isinstance(value, str) and value in secrets else value
