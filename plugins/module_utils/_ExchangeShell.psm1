# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module util is private to the smarthost.relay collection. It is not part of its public API and may
# change or disappear without notice.
#
# What the Exchange modules share: the options that say how to load the Exchange Management Shell, loading it, and
# reading Exchange values (live objects, or the strings an implicit remote session deserializes them to) in one form
# that compares.

function Get-ExchangeSessionSpec {
    # The options that say how a module loads the Exchange Management Shell (read by Resolve-ExchangeSnapin and
    # Import-ExchangeRemoteShell), as an argument spec fragment: [Ansible.Basic.AnsibleModule]::Create($args, $spec,
    # @(Get-ExchangeSessionSpec)). Documented once, in plugins/doc_fragments/exchange_session.py. A module meant for
    # Edge Transport servers, which have no remote PowerShell endpoint, passes -DefaultSession snapin.
    param(
        [ValidateSet('remote', 'snapin')]
        [string]$DefaultSession = 'remote'
    )
    $sessionSpec = @{
        options = @{
            session = @{ type = 'str'; choices = @('remote', 'snapin'); default = $DefaultSession }
            session_uri = @{ type = 'str' }
            session_authentication = @{ type = 'str'; choices = @('Default', 'Kerberos', 'Negotiate'); default = 'Kerberos' }
            session_username = @{ type = 'str' }
            session_password = @{ type = 'str'; no_log = $true }
            snapin = @{ type = 'str' }
        }
        required_together = @(, @('session_username', 'session_password'))
    }
    return $sessionSpec
}

function Resolve-ExchangeSnapin {
    # The Exchange Management Shell snap-in the calling module has to add for session=snapin; nothing for
    # session=remote, or when the snap-in is there already. The module adds it itself: a snap-in's cmdlets reach only
    # the session state that adds it, and this module util runs in a session state of its own.
    param(
        [Parameter(Mandatory = $true)]
        $Module
    )
    $options = $Module.Params
    if ($options.session -ne 'snapin') {
        return
    }
    $candidates = @('Microsoft.Exchange.Management.PowerShell.SnapIn', 'Microsoft.Exchange.Management.PowerShell.E2010')
    if ($options.snapin) {
        $candidates = @($options.snapin)
    }
    $registered = @(Get-PSSnapin -Registered -ErrorAction SilentlyContinue | ForEach-Object { [string]$_.Name })
    $snapinName = @($candidates | Where-Object { $registered -contains $_ }) | Select-Object -First 1
    if (-not $snapinName) {
        $Module.FailJson(("No Exchange Management Shell snap-in is registered on this host (looked for: {0}; registered: {1}). " +
                "Run the module on an Exchange server, or use session=remote.") -f ($candidates -join ', '), ($registered -join ', '))
    }
    if ($null -eq (Get-PSSnapin -Name $snapinName -ErrorAction SilentlyContinue)) {
        $snapinName
    }
}

function Import-ExchangeRemoteShell {
    # For session=remote: opens an implicit remote session to the server's /PowerShell endpoint with the
    # Microsoft.Exchange configuration, imports the cmdlets named in $CommandName for the calling module and returns
    # the session (to be removed by the caller). $null for session=snapin.
    param(
        [Parameter(Mandatory = $true)]
        $Module,
        [Parameter(Mandatory = $true)]
        [string[]]$CommandName
    )
    $options = $Module.Params
    if ($options.session -ne 'remote') {
        return $null
    }
    $uri = $options.session_uri
    if (-not $uri) {
        $hostName = [System.Net.Dns]::GetHostEntry([string]$env:COMPUTERNAME).HostName
        $uri = 'http://{0}/PowerShell/' -f $hostName
    }
    $sessionParams = @{
        ConfigurationName = 'Microsoft.Exchange'
        ConnectionUri = $uri
        Authentication = $options.session_authentication
        ErrorAction = 'Stop'
    }
    if ($options.session_username) {
        $sessionSecret = ConvertTo-SecureString -String $options.session_password -AsPlainText -Force
        $sessionParams.Credential = New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList $options.session_username, $sessionSecret
    }
    try {
        $session = New-PSSession @sessionParams
    }
    catch {
        $Module.FailJson((("Could not open an Exchange remote PowerShell session to {0} ({1} authentication): {2}. From inside a WinRM " +
                    "session this needs credentials that can be delegated (session_username/session_password, become, CredSSP or " +
                    "Kerberos delegation), or use session=snapin on an Exchange server.") -f $uri, $options.session_authentication,
                $_.Exception.Message), $_)
    }
    try {
        $proxy = Import-PSSession -Session $session -CommandName $CommandName -DisableNameChecking -AllowClobber -ErrorAction Stop
        # Import-PSSession imports into its caller's session state, this module util's: importing the proxy module
        # again, globally, gives the calling module its commands.
        $null = Import-Module -ModuleInfo $proxy -Global -DisableNameChecking -ErrorAction Stop
    }
    catch {
        Remove-PSSession -Session $session -ErrorAction SilentlyContinue
        $Module.FailJson(("Could not import the Exchange cmdlets from {0}: {1}" -f $uri, $_.Exception.Message), $_)
    }
    return $session
}

function Remove-ExchangeRemoteShell {
    # Closes the session Import-ExchangeRemoteShell opened, if any.
    param($Session)
    if ($null -ne $Session) {
        Remove-PSSession -Session $Session -ErrorAction SilentlyContinue
    }
}

function ConvertTo-Text {
    # A scalar Exchange value as text: '' for $null. Live objects and the strings that an implicit
    # remote session deserializes them to print the same.
    param($Value)
    if ($null -eq $Value) {
        return ''
    }
    return ([string]$Value).Trim()
}

function ConvertTo-Flag {
    # A boolean, whether it arrives as [bool] or as the text 'True'/'False'.
    param($Value)
    if ($Value -is [bool]) {
        return $Value
    }
    return ((ConvertTo-Text $Value) -eq 'True')
}

function ConvertTo-StringList {
    # The items of a multi-valued Exchange property as text, one per pipeline item.
    param($Value)
    if ($null -eq $Value) {
        return
    }
    foreach ($item in @($Value)) {
        $text = ConvertTo-Text $item
        if ($text -ne '') {
            $text
        }
    }
}

function ConvertTo-AddressSpaceText {
    # 'SMTP:*;1', '*' and 'smtp:*' all become 'smtp:*;1' (type, address space, cost).
    param([string]$Value)
    $text = $Value.Trim()
    $type = 'smtp'
    $cost = '1'
    $colon = $text.IndexOf(':')
    if ($colon -gt 0) {
        $type = $text.Substring(0, $colon).Trim().ToLowerInvariant()
        $text = $text.Substring($colon + 1)
    }
    $semicolon = $text.LastIndexOf(';')
    if ($semicolon -ge 0) {
        $cost = $text.Substring($semicolon + 1).Trim()
        $text = $text.Substring(0, $semicolon)
    }
    return '{0}:{1};{2}' -f $type, $text.Trim().ToLowerInvariant(), $cost
}

function ConvertTo-ByteCount {
    # A message size as a number of bytes in text, or 'unlimited': '35MB' (option), a live
    # Unlimited<ByteQuantifiedSize> and the remote session's '35 MB (36,700,160 bytes)' agree.
    param($Value)
    $text = ConvertTo-Text $Value
    if ($text -eq '') {
        return ''
    }
    if ($text -eq 'unlimited') {
        return 'unlimited'
    }
    $inBytes = [regex]::Match($text, '\(([0-9][0-9,.\s]*) bytes\)')
    if ($inBytes.Success) {
        return ($inBytes.Groups[1].Value -replace '[^0-9]', '')
    }
    $withUnit = [regex]::Match($text, '^([0-9]+)\s*(B|KB|MB|GB|TB)?$', 'IgnoreCase')
    if (-not $withUnit.Success) {
        return $text
    }
    $factor = [decimal]1
    switch ($withUnit.Groups[2].Value.ToUpperInvariant()) {
        'KB' { $factor = [decimal]1024 }
        'MB' { $factor = [decimal]1048576 }
        'GB' { $factor = [decimal]1073741824 }
        'TB' { $factor = [decimal]1099511627776 }
    }
    return ([decimal]$withUnit.Groups[1].Value * $factor).ToString([System.Globalization.CultureInfo]::InvariantCulture)
}

function ConvertTo-TimeSpanText {
    # A time span in the invariant [d.]hh:mm:ss form, from an option, a live EnhancedTimeSpan or its text.
    param($Value)
    $text = ConvertTo-Text $Value
    if ($text -eq '') {
        return ''
    }
    $span = [TimeSpan]::Zero
    if ([TimeSpan]::TryParse($text, [System.Globalization.CultureInfo]::InvariantCulture, [ref]$span)) {
        return $span.ToString()
    }
    return $text
}

function ConvertTo-SettingValue {
    # One send connector setting in the form this module compares: the wanted value (an option) and the
    # current one (a property of Get-SendConnector's output) go through the same conversion.
    param(
        [string]$Name,
        $Value
    )
    switch ($Name) {
        'AddressSpaces' {
            return , @(ConvertTo-StringList $Value | ForEach-Object { ConvertTo-AddressSpaceText $_ } | Sort-Object -Unique)
        }
        'SmartHosts' {
            return , @(ConvertTo-StringList $Value | ForEach-Object { $_.ToLowerInvariant() } | Sort-Object -Unique)
        }
        'SourceTransportServers' {
            return , @(ConvertTo-StringList $Value | ForEach-Object { $_.ToLowerInvariant() } | Sort-Object -Unique)
        }
        'Port' {
            $port = 0
            if ([int]::TryParse((ConvertTo-Text $Value), [ref]$port)) {
                return $port
            }
            return 0
        }
        'MaxMessageSize' {
            return ConvertTo-ByteCount $Value
        }
        'ConnectionInactivityTimeOut' {
            return ConvertTo-TimeSpanText $Value
        }
        'Comment' {
            return ConvertTo-Text $Value
        }
        { $_ -in @('DNSRoutingEnabled', 'RequireTLS', 'IgnoreSTARTTLS', 'DomainSecureEnabled', 'Enabled') } {
            return ConvertTo-Flag $Value
        }
        default {
            return (ConvertTo-Text $Value).ToLowerInvariant()
        }
    }
}

function ConvertTo-ConnectorState {
    # The settings of a send connector that this collection manages or checks, never a password: the
    # authentication credential appears only as its user name.
    param($Connector)
    $state = [ordered]@{
        Name = ConvertTo-Text $Connector.Name
    }
    $names = @('AddressSpaces', 'SmartHosts', 'DNSRoutingEnabled', 'Port', 'RequireTLS', 'IgnoreSTARTTLS', 'TlsAuthLevel',
        'TlsDomain', 'SmartHostAuthMechanism', 'Fqdn', 'SourceTransportServers', 'DomainSecureEnabled', 'MaxMessageSize',
        'ConnectionInactivityTimeOut', 'Comment', 'Enabled')
    foreach ($name in $names) {
        $state[$name] = ConvertTo-SettingValue -Name $name -Value $Connector.$name
    }
    $user = ''
    $credential = $Connector.AuthenticationCredential
    if ($null -ne $credential -and $null -ne $credential.PSObject.Properties['UserName']) {
        $user = ConvertTo-Text $credential.UserName
    }
    $state['AuthenticationUser'] = $user.ToLowerInvariant()
    return $state
}

function Test-SameSetting {
    # True when two converted setting values are equal (lists item by item, in order).
    param(
        $Current,
        $Wanted
    )
    $currentIsList = ($Current -is [System.Collections.IEnumerable]) -and -not ($Current -is [string])
    $wantedIsList = ($Wanted -is [System.Collections.IEnumerable]) -and -not ($Wanted -is [string])
    if ($currentIsList -or $wantedIsList) {
        return ((@($Current) -join "`n") -ceq (@($Wanted) -join "`n"))
    }
    return ([string]$Current -ceq [string]$Wanted)
}

$exportedFunctions = @(
    'Get-ExchangeSessionSpec'
    'Resolve-ExchangeSnapin'
    'Import-ExchangeRemoteShell'
    'Remove-ExchangeRemoteShell'
    'ConvertTo-Text'
    'ConvertTo-Flag'
    'ConvertTo-StringList'
    'ConvertTo-ByteCount'
    'ConvertTo-TimeSpanText'
    'ConvertTo-SettingValue'
    'ConvertTo-ConnectorState'
    'Test-SameSetting'
)
Export-ModuleMember -Function $exportedFunctions
