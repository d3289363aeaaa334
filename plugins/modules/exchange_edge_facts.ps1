#!powershell

# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.smarthost.relay.plugins.module_utils._ExchangeShell

# Reports, as facts, whether an Edge Transport server received the hub's send connector settings and
# whether its receive connectors take mail from the hub servers as Google's SMTP relay service document
# asks. It changes nothing. Every option reaches this script as data in $module.Params. The
# documentation is plugins/modules/exchange_edge_facts.py.

# The session options (how the Exchange Management Shell is loaded) come from Get-ExchangeSessionSpec.
$spec = @{
    options = @{
        connector_name = @{ type = 'str'; required = $true }
        expected = @{ type = 'dict' }
        hub_addresses = @{ type = 'list'; elements = 'str'; required = $true }
        receive_connector = @{ type = 'str' }
        fail_on_mismatch = @{ type = 'bool'; default = $true }
    }
    supports_check_mode = $true
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

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec, @(Get-ExchangeSessionSpec -DefaultSession 'snapin'))
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
    # Added here: a snap-in's cmdlets reach only the session state that adds it, not the module util's.
    foreach ($snapin in @(Resolve-ExchangeSnapin -Module $module)) {
        Add-PSSnapin -Name $snapin -ErrorAction Stop
    }
    $session = Import-ExchangeRemoteShell -Module $module -CommandName $commands

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
    Remove-ExchangeRemoteShell -Session $session
}

$module.ExitJson()
