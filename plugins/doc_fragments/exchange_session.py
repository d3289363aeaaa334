# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # How the Exchange modules load the Exchange Management Shell, written once. Their argument spec is
    # Get-ExchangeSessionSpec in plugins/module_utils/_ExchangeShell.psm1; tests/unit compares the two.
    DOCUMENTATION = r"""
options:
  session:
    description:
      - V(remote) imports the cmdlets from an implicit remote session to O(session_uri) (configuration
        C(Microsoft.Exchange)); it works from any Windows host that can reach the server, including a management host
        for Exchange versions whose Windows Server Ansible no longer supports.
      - V(snapin) loads the Exchange snap-in (O(snapin)) in the module's own session, on an Exchange server; the only
        choice on an Edge Transport server.
    type: str
    choices: [remote, snapin]
    default: remote
  session_uri:
    description:
      - Endpoint of the remote session. Defaults to C(http://<this host's FQDN>/PowerShell/).
    type: str
  session_authentication:
    description:
      - Authentication of the remote session.
    type: str
    choices: [Default, Kerberos, Negotiate]
    default: Kerberos
  session_username:
    description:
      - User for the remote session. Without it the session uses the identity of the WinRM connection, which needs
        delegable credentials (become, CredSSP or Kerberos delegation).
      - Given together with O(session_password).
    type: str
  session_password:
    description:
      - Password of O(session_username).
    type: str
  snapin:
    description:
      - Snap-in to load with O(session=snapin). Defaults to the first registered of
        C(Microsoft.Exchange.Management.PowerShell.SnapIn) (2013 and later) and
        C(Microsoft.Exchange.Management.PowerShell.E2010) (2010).
    type: str
"""
