#!powershell

# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.smarthost.relay.plugins.module_utils._ExchangeShell

# Points an Exchange send connector at a smart host (Google's SMTP relay). Every option reaches this
# script as data in $module.Params and is passed to the Exchange cmdlets as parameter values; no
# command text is ever built from it. The documentation is plugins/modules/exchange_send_connector.py.

# The session options (how the Exchange Management Shell is loaded) come from Get-ExchangeSessionSpec.
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
    }
    required_if = @(
        , @('smart_host_auth', 'BasicAuthRequireTLS', @('auth_username', 'auth_password'))
        , @('tls_auth_level', 'DomainValidation', @('tls_domain'))
    )
    supports_check_mode = $true
}

# The Comment that marks a connector as managed by this module (mode connector).
$ManagedComment = 'Managed by Ansible (smarthost.relay.exchange): routes all outbound mail through the relay'

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec, @(Get-ExchangeSessionSpec))
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
    # Added here: a snap-in's cmdlets reach only the session state that adds it, not the module util's.
    foreach ($snapin in @(Resolve-ExchangeSnapin -Module $module)) {
        Add-PSSnapin -Name $snapin -ErrorAction Stop
    }
    $session = Import-ExchangeRemoteShell -Module $module -CommandName $commands

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
    Remove-ExchangeRemoteShell -Session $session
}

$module.ExitJson()
