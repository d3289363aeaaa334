# -*- coding: utf-8 -*-
# This file is private to the smarthost.relay collection. It is not part of
# its public API and may change or disappear without notice.
#
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Facts about a relayed message that go into the record."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def message_id(content: bytes) -> Optional[str]:
    """The Message-ID header of ``content`` (unfolded), or None."""
    end = _HEADER_END.search(content)
    header = content[: end.start()] if end else content
    found = _MESSAGE_ID.search(header)
    if not found:
        return None
    value = b" ".join(found.group(1).split())
    return value.decode("utf-8", "replace") or None


def store(mail_dir: Path, name: str, content: bytes) -> Path:
    """Write an accepted message to ``mail_dir/name.eml``."""
    mail_dir.mkdir(parents=True, exist_ok=True)
    path = mail_dir / (name + ".eml")
    path.write_bytes(content)
    return path
