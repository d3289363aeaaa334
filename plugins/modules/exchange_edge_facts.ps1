#!powershell

# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic

# Reports, as facts, whether an Edge Transport server received the hub's send connector settings and
# whether its receive connectors take mail from the hub servers as Google's SMTP relay service document
# asks. It changes nothing. Every option reaches this script as data in $module.Params. The
# documentation is plugins/modules/exchange_edge_facts.py.

$spec = @{
    options = @{
        connector_name = @{ type = 'str'; required = $true }
        expected = @{ type = 'dict' }
        hub_addresses = @{ type = 'list'; elements = 'str'; required = $true }
        receive_connector = @{ type = 'str' }
        fail_on_mismatch = @{ type = 'bool'; default = $true }
        session = @{ type = 'str'; choices = @('remote', 'snapin'); default = 'snapin' }
        session_uri = @{ type = 'str' }
        session_authentication = @{ type = 'str'; choices = @('Default', 'Kerberos', 'Negotiate'); default = 'Kerberos' }
        session_username = @{ type = 'str' }
        session_password = @{ type = 'str'; no_log = $true }
        snapin = @{ type = 'str' }
    }
    required_together = @(, @('session_username', 'session_password'))
    supports_check_mode = $true
}

function Import-ExchangeShell {
    # Loads the Exchange Management Shell cmdlets named in $CommandName into this session: from the
    # version's snap-in (session=snapin), or from an implicit remote session to the server's /PowerShell
    # endpoint with the Microsoft.Exchange configuration (session=remote). Returns the remote session
    # (to be removed by the caller) or $null.
    param(
        [Parameter(Mandatory = $true)]
        $Module,
        [Parameter(Mandatory = $true)]
        [string[]]$CommandName
    )
    $options = $Module.Params
    if ($options.session -eq 'snapin') {
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
            try {
                Add-PSSnapin -Name $snapinName -ErrorAction Stop
            }
            catch {
                $Module.FailJson(("Could not load the Exchange snap-in {0}: {1}" -f $snapinName, $_.Exception.Message), $_)
            }
        }
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
        $null = Import-PSSession -Session $session -CommandName $CommandName -DisableNameChecking -AllowClobber -ErrorAction Stop
    }
    catch {
        Remove-PSSession -Session $session -ErrorAction SilentlyContinue
        $Module.FailJson(("Could not import the Exchange cmdlets from {0}: {1}" -f $uri, $_.Exception.Message), $_)
    }
    return $session
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

function ConvertTo-AddressBytes {
    # The bytes of an IPv4 or IPv6 address, or $null when the text is not an address.
    param([string]$Text)
    $address = $null
    if ([System.Net.IPAddress]::TryParse($Text.Trim().Trim('[', ']'), [ref]$address)) {
        return , $address.GetAddressBytes()
    }
    return $null
}

function Compare-AddressBytes {
    # -1, 0 or 1 as the address $Left sorts before, equal to or after $Right (same family).
    param(
        [byte[]]$Left,
        [byte[]]$Right
    )
    for ($i = 0; $i -lt $Left.Length; $i++) {
        if ($Left[$i] -lt $Right[$i]) {
            return -1
        }
        if ($Left[$i] -gt $Right[$i]) {
            return 1
        }
    }
    return 0
}

function Get-RangeBound {
    # The lowest and highest address of a RemoteIPRanges entry: 'a', 'a/len', 'a(mask)' or 'a-b'
    # (IPv4 or IPv6), and how many leading bits they share (larger is more specific). $null when the
    # entry is not understood.
    param([string]$Text)
    $text = $Text.Trim()
    $lower = $null
    $upper = $null
    if ($text -match '^(.+)-(.+)$' -and $null -ne (ConvertTo-AddressBytes $Matches[1])) {
        $lower = ConvertTo-AddressBytes $Matches[1]
        $upper = ConvertTo-AddressBytes $Matches[2]
    }
    elseif ($text -match '^(.+)/([0-9]{1,3})$' -or $text -match '^(.+)\((.+)\)$') {
        $base = ConvertTo-AddressBytes $Matches[1]
        $maskText = $Matches[2]
        if ($null -eq $base) {
            return $null
        }
        $mask = New-Object -TypeName byte[] -ArgumentList $base.Length
        if ($maskText -match '^[0-9]{1,3}$') {
            $prefix = [int]$maskText
            if ($prefix -gt $base.Length * 8) {
                return $null
            }
            for ($i = 0; $i -lt $base.Length; $i++) {
                $bits = [Math]::Max(0, [Math]::Min(8, $prefix - 8 * $i))
                $mask[$i] = [byte]((0xFF -shl (8 - $bits)) -band 0xFF)
            }
        }
        else {
            $mask = ConvertTo-AddressBytes $maskText
            if ($null -eq $mask -or $mask.Length -ne $base.Length) {
                return $null
            }
        }
        $lower = New-Object -TypeName byte[] -ArgumentList $base.Length
        $upper = New-Object -TypeName byte[] -ArgumentList $base.Length
        for ($i = 0; $i -lt $base.Length; $i++) {
            $lower[$i] = [byte]($base[$i] -band $mask[$i])
            $upper[$i] = [byte]($lower[$i] -bor (0xFF -bxor $mask[$i]))
        }
    }
    else {
        $lower = ConvertTo-AddressBytes $text
        $upper = $lower
    }
    if ($null -eq $lower -or $null -eq $upper -or $lower.Length -ne $upper.Length -or (Compare-AddressBytes $lower $upper) -gt 0) {
        return $null
    }
    $shared = 0
    for ($i = 0; $i -lt $lower.Length * 8; $i++) {
        $bit = 0x80 -shr ($i % 8)
        if (($lower[$i -shr 3] -band $bit) -ne ($upper[$i -shr 3] -band $bit)) {
            break
        }
        $shared++
    }
    return @{
        Lower = $lower
        Upper = $upper
        Shared = $shared
    }
}

function Test-RangeContains {
    # True when the address bytes lie inside the bounds from Get-RangeBound.
    param(
        $Bound,
        [byte[]]$Address
    )
    if ($null -eq $Bound -or $Bound.Lower.Length -ne $Address.Length) {
        return $false
    }
    return ((Compare-AddressBytes $Bound.Lower $Address) -le 0) -and ((Compare-AddressBytes $Address $Bound.Upper) -le 0)
}

function ConvertTo-NameList {
    # 'Tls, ExchangeServer' (a flags value as text) or a list of values, as a list of names.
    param($Value)
    foreach ($item in @(ConvertTo-StringList $Value)) {
        foreach ($part in ($item -split '[,\s]+')) {
            if ($part -ne '') {
                $part
            }
        }
    }
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$options = $module.Params
$connectorName = $options.connector_name.Trim()
$hubAddresses = [System.Collections.Generic.List[object]]@()
foreach ($hubAddress in $options.hub_addresses) {
    $bytes = ConvertTo-AddressBytes ([string]$hubAddress)
    if ($null -eq $bytes) {
        $module.FailJson(("hub_addresses: '{0}' is not an IPv4 or IPv6 address" -f $hubAddress))
    }
    $hubAddresses.Add(@{
            Text = ([string]$hubAddress).Trim()
            Bytes = $bytes
        })
}
if ($hubAddresses.Count -eq 0) {
    $module.FailJson('hub_addresses must list the addresses the Mailbox (Hub Transport) servers connect to the Edge from')
}

# The replicated settings that must be equal on the Edge and in Active Directory.
$replicated = @('AddressSpaces', 'SmartHosts', 'DNSRoutingEnabled', 'Port', 'RequireTLS', 'IgnoreSTARTTLS', 'TlsAuthLevel',
    'TlsDomain', 'SmartHostAuthMechanism', 'AuthenticationUser', 'Fqdn', 'DomainSecureEnabled', 'MaxMessageSize',
    'ConnectionInactivityTimeOut')

$checks = [System.Collections.Generic.List[object]]@()
$facts = [ordered]@{
    server = ''
    version = ''
    is_edge = $false
    connector = $null
    connector_differences = @()
    receive_connectors = @()
    checks = $null
    ok = $false
}

$commands = @('Get-SendConnector', 'Get-ReceiveConnector', 'Get-ExchangeServer')
$session = $null
try {
    $session = Import-ExchangeShell -Module $module -CommandName $commands

    $local = @(Get-ExchangeServer -Identity ([string]$env:COMPUTERNAME) -ErrorAction SilentlyContinue) | Select-Object -First 1
    if ($null -ne $local) {
        $facts.server = ConvertTo-Text $local.Name
        $facts.version = ConvertTo-Text $local.AdminDisplayVersion
        $facts.is_edge = ConvertTo-Flag $local.IsEdgeServer
    }
    if (-not $facts.is_edge) {
        $module.Warn(("{0} does not report itself as an Edge Transport server; these checks are meant to run on one." -f $env:COMPUTERNAME))
    }

    # --- the replicated send connector -------------------------------------------------------------
    try {
        $edgeConnector = @(Get-SendConnector -ErrorAction Stop) | Where-Object { (ConvertTo-Text $_.Name) -eq $connectorName } | Select-Object -First 1
    }
    catch {
        $module.FailJson(('Get-SendConnector failed: {0}' -f $_.Exception.Message), $_)
    }
    if ($null -eq $edgeConnector) {
        $checks.Add(@{
                name = 'connector_present'
                ok = $false
                detail = ("The send connector '{0}' is not on this Edge server yet: EdgeSync has not replicated it (run " +
                    "Test-EdgeSynchronization on a Mailbox server)") -f $connectorName
            })
    }
    else {
        $state = ConvertTo-ConnectorState -Connector $edgeConnector
        $facts.connector = $state
        $checks.Add(@{
                name = 'connector_present'
                ok = $true
                detail = "The send connector '{0}' is on this Edge server" -f $connectorName
            })
        if ($null -ne $options.expected) {
            $differences = [System.Collections.Generic.List[object]]@()
            foreach ($key in $replicated) {
                if (-not $options.expected.ContainsKey($key)) {
                    continue
                }
                $hubValue = ConvertTo-SettingValue -Name $key -Value $options.expected[$key]
                if (-not (Test-SameSetting -Current $state[$key] -Wanted $hubValue)) {
                    $differences.Add(@{
                            setting = $key
                            hub = $hubValue
                            edge = $state[$key]
                        })
                }
            }
            $facts.connector_differences = @($differences)
            $differing = 'none'
            if ($differences.Count -gt 0) {
                $differing = @($differences | ForEach-Object { $_.setting }) -join ', '
            }
            $checks.Add(@{
                    name = 'connector_replicated'
                    ok = ($differences.Count -eq 0)
                    detail = "Settings of the Edge's copy that differ from the hub's: {0}" -f $differing
                })
        }
    }

    # --- receive connectors ------------------------------------------------------------------------
    try {
        $receiveConnectors = @(Get-ReceiveConnector -ErrorAction Stop)
    }
    catch {
        $module.FailJson(('Get-ReceiveConnector failed: {0}' -f $_.Exception.Message), $_)
    }
    $described = [System.Collections.Generic.List[object]]@()
    foreach ($receiveConnector in $receiveConnectors) {
        $ranges = @(ConvertTo-StringList $receiveConnector.RemoteIPRanges)
        $described.Add([ordered]@{
                name = ConvertTo-Text $receiveConnector.Name
                enabled = ConvertTo-Flag $receiveConnector.Enabled
                bindings = @(ConvertTo-StringList $receiveConnector.Bindings)
                remote_ip_ranges = $ranges
                auth_mechanism = @(ConvertTo-NameList $receiveConnector.AuthMechanism)
                permission_groups = @(ConvertTo-NameList $receiveConnector.PermissionGroups)
                bounds = @($ranges | ForEach-Object {
                        @{
                            Text = $_
                            Bound = Get-RangeBound $_
                        }
                    })
            })
    }
    $facts.receive_connectors = @($described | ForEach-Object {
            [ordered]@{
                name = $_.name
                enabled = $_.enabled
                bindings = $_.bindings
                remote_ip_ranges = $_.remote_ip_ranges
                auth_mechanism = $_.auth_mechanism
                permission_groups = $_.permission_groups
            }
        })
    $candidates = @($described | Where-Object { $_.enabled })
    if ($options.receive_connector) {
        $candidates = @($candidates | Where-Object { $_.name -eq $options.receive_connector.Trim() })
        if ($candidates.Count -eq 0) {
            $checks.Add(@{
                    name = 'receive_connector_present'
                    ok = $false
                    detail = "No enabled receive connector named '{0}' on this Edge server" -f $options.receive_connector
                })
        }
    }
    else {
        # The connectors that take SMTP on port 25, where the hub servers deliver.
        $candidates = @($candidates | Where-Object { @($_.bindings | Where-Object { $_ -match ':25$' }).Count -gt 0 })
    }
    $checked = @{}
    foreach ($hubAddress in $hubAddresses) {
        # Exchange takes a connection on the receive connector whose remote range matches it most specifically.
        $best = $null
        $bestShared = -1
        $bestRange = ''
        foreach ($candidate in $candidates) {
            foreach ($range in $candidate.bounds) {
                if ((Test-RangeContains -Bound $range.Bound -Address $hubAddress.Bytes) -and $range.Bound.Shared -gt $bestShared) {
                    $best = $candidate
                    $bestShared = $range.Bound.Shared
                    $bestRange = $range.Text
                }
            }
        }
        if ($null -eq $best) {
            $checks.Add(@{
                    name = 'hub_address_in_remote_ip_ranges'
                    ok = $false
                    detail = ("The hub address {0} is in the RemoteIPRanges of no enabled receive connector on port 25 " +
                        "(service document step 11: the Network tab has the IP range of all hub servers)") -f $hubAddress.Text
                })
            continue
        }
        $checks.Add(@{
                name = 'hub_address_in_remote_ip_ranges'
                ok = $true
                detail = "The hub address {0} reaches the receive connector '{1}' (range {2})" -f $hubAddress.Text, $best.name, $bestRange
            })
        if ($checked.ContainsKey($best.name)) {
            continue
        }
        $checked[$best.name] = $true
        $checks.Add(@{
                name = 'exchange_server_authentication'
                ok = (@($best.auth_mechanism) -contains 'ExchangeServer')
                detail = ("Receive connector '{0}' authentication: {1} (service document step 11 needs Exchange Server " +
                    "authentication, ExchangeServer)") -f $best.name, (@($best.auth_mechanism) -join ', ')
            })
        $checks.Add(@{
                name = 'exchange_servers_permission_group'
                ok = (@($best.permission_groups) -contains 'ExchangeServers')
                detail = ("Receive connector '{0}' permission groups: {1} (service document step 11 needs the Exchange " +
                    "Servers permission group, ExchangeServers)") -f $best.name, (@($best.permission_groups) -join ', ')
            })
    }

    $facts.checks = @($checks)
    $failed = @($checks | Where-Object { -not $_.ok })
    $facts.ok = ($failed.Count -eq 0)
    $module.Result.ansible_facts = @{
        exchange_edge = $facts
    }
    $module.Result.changed = $false
    if ($failed.Count -gt 0 -and $options.fail_on_mismatch) {
        $module.FailJson(("The Edge server {0} does not match the hub's settings or the service document's receive connector " +
                "checks (nothing was changed):`n{1}") -f $env:COMPUTERNAME, (@($failed | ForEach-Object { '- ' + $_.name + ': ' + $_.detail }) -join "`n"))
    }
}
finally {
    if ($null -ne $session) {
        Remove-PSSession -Session $session -ErrorAction SilentlyContinue
    }
}

$module.ExitJson()
