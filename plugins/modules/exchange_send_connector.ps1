#!powershell

# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic

# Points an Exchange send connector at a smart host (Google's SMTP relay). Every option reaches this
# script as data in $module.Params and is passed to the Exchange cmdlets as parameter values; no
# command text is ever built from it. The documentation is plugins/modules/exchange_send_connector.py.

$spec = @{
    options = @{
        name = @{ type = 'str'; default = 'Outbound' }
        mode = @{ type = 'str'; choices = @('connector', 'edge'); default = 'connector' }
        smart_hosts = @{ type = 'list'; elements = 'str'; required = $true }
        port = @{ type = 'int'; default = 587 }
        require_tls = @{ type = 'bool'; default = $true }
        ignore_starttls = @{ type = 'bool'; default = $false }
        tls_auth_level = @{ type = 'str'; choices = @('EncryptionOnly', 'CertificateValidation', 'DomainValidation') }
        tls_domain = @{ type = 'str' }
        smart_host_auth = @{ type = 'str'; choices = @('None', 'BasicAuthRequireTLS'); default = 'None' }
        auth_username = @{ type = 'str' }
        auth_password = @{ type = 'str'; no_log = $true }
        auth_password_update = @{ type = 'str'; choices = @('always', 'on_change'); default = 'on_change' }
        fqdn = @{ type = 'str' }
        source_servers = @{ type = 'list'; elements = 'str'; default = @() }
        max_message_size = @{ type = 'str' }
        connection_inactivity_timeout = @{ type = 'str' }
        take_over = @{ type = 'bool'; default = $false }
        edge_sync = @{ type = 'bool'; default = $true }
        edge_sync_server = @{ type = 'str' }
        domain_controller = @{ type = 'str' }
        session = @{ type = 'str'; choices = @('remote', 'snapin'); default = 'remote' }
        session_uri = @{ type = 'str' }
        session_authentication = @{ type = 'str'; choices = @('Default', 'Kerberos', 'Negotiate'); default = 'Kerberos' }
        session_username = @{ type = 'str' }
        session_password = @{ type = 'str'; no_log = $true }
        snapin = @{ type = 'str' }
    }
    required_if = @(
        , @('smart_host_auth', 'BasicAuthRequireTLS', @('auth_username', 'auth_password'))
        , @('tls_auth_level', 'DomainValidation', @('tls_domain'))
    )
    required_together = @(, @('session_username', 'session_password'))
    supports_check_mode = $true
}

# The Comment that marks a connector as managed by this module (mode connector).
$ManagedComment = 'Managed by Ansible (smarthost.relay.exchange): routes all outbound mail through the relay'

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

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$options = $module.Params
$edge = $options.mode -eq 'edge'
$name = $options.name.Trim()

# --- option checks that need no Exchange ---------------------------------------------------------
if ($name -eq '') {
    $module.FailJson('name must not be empty')
}
if (-not $edge -and $name -match '^EdgeSync - .+ to Internet$') {
    $module.FailJson(("'{0}' is the name of an Edge subscription's connector; use mode=edge to point it at the relay, " +
            "or choose another name for a hub connector") -f $name)
}
$smartHosts = @($options.smart_hosts | ForEach-Object { ([string]$_).Trim() } | Where-Object { $_ -ne '' })
if ($smartHosts.Count -eq 0) {
    $module.FailJson('smart_hosts must name at least one relay host')
}
if ($options.port -lt 1 -or $options.port -gt 65535) {
    $module.FailJson(('port must be between 1 and 65535, got {0}' -f $options.port))
}
if ($options.require_tls -and $options.ignore_starttls) {
    $module.FailJson('require_tls and ignore_starttls exclude each other: a connector that must use TLS cannot ignore STARTTLS')
}
if (-not $options.require_tls -and $null -ne $options.tls_auth_level) {
    $module.FailJson('tls_auth_level needs require_tls=true (Exchange accepts a TLS authentication level only on connectors that require TLS)')
}
if ($options.smart_host_auth -eq 'BasicAuthRequireTLS' -and $options.ignore_starttls) {
    $module.FailJson('smart_host_auth=BasicAuthRequireTLS sends the password only after STARTTLS, so ignore_starttls must be false')
}
if ($null -ne $options.max_message_size) {
    $size = $options.max_message_size.Trim()
    if ($size -notmatch '^(?i:unlimited|[0-9]+\s*(KB|MB|GB))$') {
        $module.FailJson(("max_message_size must be a whole number of KB, MB or GB (for example 35MB) or 'unlimited', got '{0}'" -f $size))
    }
    $bytes = ConvertTo-ByteCount $size
    if ($bytes -ne 'unlimited' -and [decimal]$bytes -gt [decimal]2147483647) {
        $module.FailJson(("max_message_size must be at most 2147483647 bytes (2047MB), got '{0}'" -f $size))
    }
}
if ($null -ne $options.connection_inactivity_timeout) {
    $timeout = $options.connection_inactivity_timeout.Trim()
    $span = [TimeSpan]::Zero
    $validTimeout = $timeout -match '^([0-9]+\.)?[0-9]{1,2}:[0-9]{2}:[0-9]{2}$' -and
        [TimeSpan]::TryParse($timeout, [System.Globalization.CultureInfo]::InvariantCulture, [ref]$span) -and
        $span -ge [TimeSpan]::FromSeconds(1) -and $span -le [TimeSpan]::FromDays(1)
    if (-not $validTimeout) {
        $module.FailJson(("connection_inactivity_timeout must be a time span [d.]hh:mm:ss from 00:00:01 to 1.00:00:00, got '{0}'" -f $timeout))
    }
}
$sourceNames = @($options.source_servers | ForEach-Object { ([string]$_).Trim() } | Where-Object { $_ -ne '' })
if (-not $edge -and $sourceNames.Count -eq 0) {
    $module.FailJson('source_servers must name at least one Mailbox (Hub Transport) server that sends through the connector')
}
if ($edge -and $sourceNames.Count -gt 0) {
    $module.FailJson('source_servers does not apply with mode=edge: the Edge subscriptions are the source of the EdgeSync connector')
}

$dcParams = @{}
if ($options.domain_controller) {
    $dcParams.DomainController = $options.domain_controller
}

$commands = @('Get-SendConnector', 'New-SendConnector', 'Set-SendConnector', 'Get-ExchangeServer', 'Start-EdgeSynchronization')
$session = $null
try {
    $session = Import-ExchangeShell -Module $module -CommandName $commands

    # --- the connector as it is --------------------------------------------------------------------
    try {
        $allConnectors = @(Get-SendConnector @dcParams -ErrorAction Stop)
    }
    catch {
        $module.FailJson(('Get-SendConnector failed: {0}' -f $_.Exception.Message), $_)
    }
    $current = $allConnectors | Where-Object { (ConvertTo-Text $_.Name) -eq $name } | Select-Object -First 1
    $before = $null
    if ($null -ne $current) {
        $before = ConvertTo-ConnectorState -Connector $current
    }

    # --- Exchange-side checks ----------------------------------------------------------------------
    $sourceServers = [System.Collections.Generic.List[string]]@()
    $serverReport = [System.Collections.Generic.List[object]]@()
    if (-not $edge) {
        if ($null -ne $before -and $before.Comment -ne $ManagedComment -and -not $options.take_over) {
            $module.FailJson(("A send connector named '{0}' already exists and is not managed by smarthost.relay.exchange " +
                    "(its Comment is '{1}'). Choose another connector name, or set take_over=true to manage this one " +
                    "(its settings will be replaced).") -f $name, $before.Comment)
        }
        foreach ($serverName in $sourceNames) {
            $found = @(Get-ExchangeServer @dcParams -Identity $serverName -ErrorAction SilentlyContinue)
            if ($found.Count -ne 1) {
                $known = @(Get-ExchangeServer @dcParams -ErrorAction SilentlyContinue |
                        Where-Object { (ConvertTo-Flag $_.IsHubTransportServer) -or (ConvertTo-Flag $_.IsMailboxServer) } |
                        ForEach-Object { ConvertTo-Text $_.Name })
                $module.FailJson(("Unknown source server '{0}': Get-ExchangeServer does not know it. Transport servers in this " +
                        "organization: {1}") -f $serverName, ($known -join ', '))
            }
            $server = $found[0]
            if (ConvertTo-Flag $server.IsEdgeServer) {
                $module.FailJson(("Source server '{0}' is an Edge Transport server; an Edge server sends through its EdgeSync " +
                        "connector, so use mode=edge") -f $serverName)
            }
            if (-not ((ConvertTo-Flag $server.IsHubTransportServer) -or (ConvertTo-Flag $server.IsMailboxServer))) {
                $module.FailJson(("Source server '{0}' has no transport role (neither Hub Transport nor Mailbox)" -f $serverName))
            }
            $sourceServers.Add((ConvertTo-Text $server.Name))
            $serverReport.Add(@{
                    name = ConvertTo-Text $server.Name
                    version = ConvertTo-Text $server.AdminDisplayVersion
                })
        }
        foreach ($other in $allConnectors) {
            $otherName = ConvertTo-Text $other.Name
            $otherSpaces = ConvertTo-SettingValue -Name 'AddressSpaces' -Value $other.AddressSpaces
            if ($otherName -ne $name -and (ConvertTo-Flag $other.Enabled) -and @($otherSpaces | Where-Object { $_ -match '^smtp:\*;' }).Count -gt 0) {
                $module.Warn(("Send connector '{0}' also routes the address space * ({1}); Exchange sends through the connector " +
                        "with the lowest cost, so mail may bypass the relay. An EdgeSync connector means an Edge subscription: " +
                        "use mode=edge.") -f $otherName, (@($otherSpaces) -join ', '))
            }
        }
    }
    else {
        if ($null -eq $current) {
            $module.FailJson((("The Edge subscription's send connector '{0}' does not exist. Check the Active Directory site " +
                        "name (Get-SendConnector | Format-Table Name) and the Edge subscription (Get-EdgeSubscription).") -f $name))
        }
        if (@($before.AddressSpaces | Where-Object { $_ -match '^smtp:\*;' }).Count -eq 0) {
            $module.FailJson((("The EdgeSync connector '{0}' does not have the address space * (it has: {1}); the service " +
                        "document's step 4 expects it. Recreate the Edge subscription or add it in the Exchange admin tools.") -f
                    $name, (@($before.AddressSpaces) -join ', ')))
        }
        if (@($before.SourceTransportServers).Count -eq 0) {
            $module.FailJson((("The EdgeSync connector '{0}' lists no source servers, so no Edge subscription is defined for " +
                        "it (service document step 8); subscribe the Edge servers first (New-EdgeSubscription).") -f $name))
        }
        if (-not $before.Enabled) {
            $module.Warn(("The EdgeSync connector '{0}' is disabled; no mail leaves through it until it is enabled." -f $name))
        }
    }

    # --- the connector as it should be -------------------------------------------------------------
    $tlsAuthLevel = $options.tls_auth_level
    $tlsDomain = $null
    if ($tlsAuthLevel -eq 'DomainValidation') {
        $tlsDomain = $options.tls_domain.Trim()
    }
    $wanted = [ordered]@{
        AddressSpaces = [string[]]@('SMTP:*;1')
        SmartHosts = [string[]]$smartHosts
        DNSRoutingEnabled = $false
        Port = $options.port
        RequireTLS = $options.require_tls
        IgnoreSTARTTLS = $options.ignore_starttls
        TlsAuthLevel = $tlsAuthLevel
        TlsDomain = $tlsDomain
        SmartHostAuthMechanism = $options.smart_host_auth
        SourceTransportServers = [string[]]$sourceServers
        DomainSecureEnabled = $false
        Comment = $ManagedComment
        Enabled = $true
    }
    if ($options.require_tls -and $null -eq $tlsAuthLevel) {
        # Not managed: the connector keeps the level it has.
        $wanted.Remove('TlsAuthLevel')
        $wanted.Remove('TlsDomain')
    }
    if ($null -ne $options.fqdn) {
        $wanted.Fqdn = $null
        if ($options.fqdn.Trim() -ne '') {
            $wanted.Fqdn = $options.fqdn.Trim()
        }
    }
    if ($null -ne $options.max_message_size) {
        $wanted.MaxMessageSize = $options.max_message_size.Trim()
    }
    if ($null -ne $options.connection_inactivity_timeout) {
        $wanted.ConnectionInactivityTimeOut = $options.connection_inactivity_timeout.Trim()
    }
    if ($edge) {
        # The Edge subscription owns these; the checks above verified them.
        $wanted.Remove('AddressSpaces')
        $wanted.Remove('SourceTransportServers')
        $wanted.Remove('Comment')
        $wanted.Remove('Enabled')
    }

    $wantedState = [ordered]@{}
    foreach ($key in $wanted.Keys) {
        $wantedState[$key] = ConvertTo-SettingValue -Name $key -Value $wanted[$key]
    }
    $wantedUser = ''
    if ($options.smart_host_auth -eq 'BasicAuthRequireTLS') {
        $wantedUser = $options.auth_username.Trim().ToLowerInvariant()
    }

    # --- what differs ------------------------------------------------------------------------------
    $changes = [ordered]@{}
    foreach ($key in $wanted.Keys) {
        $currentValue = $null
        if ($null -ne $before) {
            $currentValue = $before[$key]
        }
        if ($null -eq $before -or -not (Test-SameSetting -Current $currentValue -Wanted $wantedState[$key])) {
            $changes[$key] = $wanted[$key]
        }
    }
    $currentUser = ''
    if ($null -ne $before) {
        $currentUser = $before.AuthenticationUser
    }
    $setCredential = $false
    $clearCredential = $false
    if ($wantedUser -ne '') {
        $setCredential = ($null -eq $before) -or $changes.Contains('SmartHostAuthMechanism') -or ($currentUser -ne $wantedUser) -or
            ($options.auth_password_update -eq 'always')
    }
    elseif ($currentUser -ne '') {
        $clearCredential = $true
    }
    # Exchange validates these together, so they travel together in one Set-SendConnector call.
    if ($changes.Contains('SmartHosts') -or $changes.Contains('DNSRoutingEnabled')) {
        $changes.SmartHosts = $wanted.SmartHosts
        $changes.DNSRoutingEnabled = $wanted.DNSRoutingEnabled
    }
    if ($wanted.Contains('TlsAuthLevel') -and ($changes.Contains('RequireTLS') -or $changes.Contains('TlsAuthLevel') -or
            $changes.Contains('TlsDomain') -or $changes.Contains('IgnoreSTARTTLS'))) {
        $changes.RequireTLS = $wanted.RequireTLS
        $changes.IgnoreSTARTTLS = $wanted.IgnoreSTARTTLS
        $changes.TlsAuthLevel = $wanted.TlsAuthLevel
        $changes.TlsDomain = $wanted.TlsDomain
    }
    if ($setCredential -and -not $changes.Contains('SmartHostAuthMechanism')) {
        $changes.SmartHostAuthMechanism = $wanted.SmartHostAuthMechanism
    }

    $afterState = [ordered]@{}
    if ($null -ne $before) {
        foreach ($key in $before.Keys) {
            $afterState[$key] = $before[$key]
        }
    }
    else {
        $afterState['Name'] = $name
    }
    foreach ($key in $wantedState.Keys) {
        $afterState[$key] = $wantedState[$key]
    }
    $afterState['AuthenticationUser'] = $wantedUser
    $changedNames = @($changes.Keys)
    if ($setCredential -or $clearCredential) {
        $changedNames += 'AuthenticationCredential'
    }
    $changed = ($null -eq $current) -or ($changedNames.Count -gt 0)

    # --- apply ---------------------------------------------------------------------------------
    if ($changed -and -not $module.CheckMode) {
        $credential = $null
        if ($setCredential) {
            $authUser = $options.auth_username.Trim()
            $secret = ConvertTo-SecureString -String $options.auth_password -AsPlainText -Force
            $credential = New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList $authUser, $secret
        }
        if ($null -eq $current) {
            $newParams = @{
                Name = $name
                Usage = 'Internet'
                ErrorAction = 'Stop'
            }
            foreach ($key in $wanted.Keys) {
                if ($null -ne $wanted[$key]) {
                    $newParams[$key] = $wanted[$key]
                }
            }
            if ($setCredential) {
                $newParams.AuthenticationCredential = $credential
            }
            try {
                $null = New-SendConnector @dcParams @newParams
            }
            catch {
                $module.FailJson(("New-SendConnector '{0}' failed: {1}" -f $name, $_.Exception.Message), $_)
            }
        }
        else {
            $identity = ConvertTo-Text $current.Guid
            if ($identity -eq '') {
                $identity = $name
            }
            $setParams = @{
                Identity = $identity
                Confirm = $false
                ErrorAction = 'Stop'
            }
            foreach ($key in $changes.Keys) {
                $setParams[$key] = $changes[$key]
            }
            if ($setCredential) {
                $setParams.AuthenticationCredential = $credential
            }
            if ($clearCredential) {
                $setParams.AuthenticationCredential = $null
            }
            try {
                Set-SendConnector @dcParams @setParams
            }
            catch {
                $module.FailJson(("Set-SendConnector '{0}' failed: {1}" -f $name, $_.Exception.Message), $_)
            }
        }
        $reread = @(Get-SendConnector @dcParams -ErrorAction Stop) | Where-Object { (ConvertTo-Text $_.Name) -eq $name } | Select-Object -First 1
        if ($null -ne $reread) {
            $afterState = ConvertTo-ConnectorState -Connector $reread
            foreach ($key in $wantedState.Keys) {
                if (-not (Test-SameSetting -Current $afterState[$key] -Wanted $wantedState[$key])) {
                    $module.Warn(("After the change Exchange reports {0} of '{1}' as '{2}', not '{3}'; the next run will try again." -f
                            $key, $name, (@($afterState[$key]) -join ', '), (@($wantedState[$key]) -join ', ')))
                }
            }
        }
        if ($edge -and $options.edge_sync) {
            $syncParams = @{
                ErrorAction = 'Stop'
            }
            if ($options.edge_sync_server) {
                $syncParams.Server = $options.edge_sync_server
            }
            try {
                $syncResult = @(Start-EdgeSynchronization @syncParams)
            }
            catch {
                $module.FailJson((("The connector was changed, but Start-EdgeSynchronization failed: {0}. Run it again on a " +
                            "Mailbox server, then Test-EdgeSynchronization.") -f $_.Exception.Message), $_)
            }
            $module.Result.edge_sync = @($syncResult | ForEach-Object {
                    @{
                        name = ConvertTo-Text $_.Name
                        result = ConvertTo-Text $_.Result
                        type = ConvertTo-Text $_.Type
                        failure_details = ConvertTo-Text $_.FailureDetails
                    }
                })
        }
    }

    $module.Result.changed = $changed
    $module.Result.created = ($null -eq $current)
    $module.Result.changes = $changedNames
    $module.Result.connector = $afterState
    $module.Result.mode = $options.mode
    $module.Result.source_servers = @($serverReport)
    if ($null -eq $before) {
        $module.Diff.before = @{}
    }
    else {
        $module.Diff.before = $before
    }
    $module.Diff.after = $afterState
}
finally {
    if ($null -ne $session) {
        Remove-PSSession -Session $session -ErrorAction SilentlyContinue
    }
}

$module.ExitJson()
