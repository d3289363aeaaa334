#!powershell

# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic

# Sets the outbound retry intervals of an Exchange transport server: Set-TransportService (Exchange 2013
# and later) or Set-TransportServer (Exchange 2010). Every option reaches this script as data in
# $module.Params. The documentation is plugins/modules/exchange_transport_retry.py.

$spec = @{
    options = @{
        server = @{ type = 'str' }
        transient_failure_retry_interval = @{ type = 'str' }
        transient_failure_retry_count = @{ type = 'int' }
        outbound_connection_failure_retry_interval = @{ type = 'str' }
        message_retry_interval = @{ type = 'str' }
        domain_controller = @{ type = 'str' }
        session = @{ type = 'str'; choices = @('remote', 'snapin'); default = 'remote' }
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

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$options = $module.Params

# Each interval option, its parameter and the range Microsoft documents for it.
$intervals = @(
    @{ Option = 'transient_failure_retry_interval'; Parameter = 'TransientFailureRetryInterval'; Max = '12:00:00' }
    @{ Option = 'outbound_connection_failure_retry_interval'; Parameter = 'OutboundConnectionFailureRetryInterval'; Max = '20.00:00:00' }
    @{ Option = 'message_retry_interval'; Parameter = 'MessageRetryInterval'; Max = '1.00:00:00' }
)
$wanted = [ordered]@{}
foreach ($interval in $intervals) {
    $value = $options[$interval.Option]
    if ($null -eq $value) {
        continue
    }
    $text = $value.Trim()
    $span = [TimeSpan]::Zero
    $valid = $text -match '^([0-9]+\.)?[0-9]{1,2}:[0-9]{2}:[0-9]{2}$' -and
        [TimeSpan]::TryParse($text, [System.Globalization.CultureInfo]::InvariantCulture, [ref]$span) -and
        $span -ge [TimeSpan]::FromSeconds(1) -and $span -le [TimeSpan]::Parse($interval.Max, [System.Globalization.CultureInfo]::InvariantCulture)
    if (-not $valid) {
        $module.FailJson(("{0} must be a time span [d.]hh:mm:ss from 00:00:01 to {1}, got '{2}'" -f $interval.Option, $interval.Max, $text))
    }
    switch ($interval.Parameter) {
        'TransientFailureRetryInterval' { $wanted.TransientFailureRetryInterval = $text }
        'OutboundConnectionFailureRetryInterval' { $wanted.OutboundConnectionFailureRetryInterval = $text }
        'MessageRetryInterval' { $wanted.MessageRetryInterval = $text }
    }
}
if ($null -ne $options.transient_failure_retry_count) {
    if ($options.transient_failure_retry_count -lt 0 -or $options.transient_failure_retry_count -gt 15) {
        $module.FailJson(('transient_failure_retry_count must be from 0 to 15, got {0}' -f $options.transient_failure_retry_count))
    }
    $wanted.TransientFailureRetryCount = $options.transient_failure_retry_count
}
if ($wanted.Count -eq 0) {
    $module.Warn('No retry setting was given, so there is nothing to do.')
    $module.ExitJson()
}

$dcParams = @{}
if ($options.domain_controller) {
    $dcParams.DomainController = $options.domain_controller
}

# Wildcards: Exchange 2010 has only the *-TransportServer cmdlets, and a name that matches nothing is skipped.
$commands = @('Get-ExchangeServer', 'Get-TransportServ*', 'Set-TransportServ*')
$session = $null
try {
    $session = Import-ExchangeShell -Module $module -CommandName $commands
    $useService = $null -ne (Get-Command -Name 'Set-TransportService' -ErrorAction SilentlyContinue)
    $cmdletNoun = 'TransportServer'
    if ($useService) {
        $cmdletNoun = 'TransportService'
    }

    # The server: the option, else this host; an Edge server is addressed without -Identity.
    $identity = $null
    if ($options.server) {
        $identity = $options.server.Trim()
    }
    else {
        $local = @(Get-ExchangeServer @dcParams -Identity ([string]$env:COMPUTERNAME) -ErrorAction SilentlyContinue) | Select-Object -First 1
        if ($null -eq $local) {
            $module.FailJson(('{0} is not an Exchange server: set server to the transport server to configure' -f $env:COMPUTERNAME))
        }
        if (-not (ConvertTo-Flag $local.IsEdgeServer)) {
            $identity = ConvertTo-Text $local.Name
        }
    }
    $getParams = @{
        ErrorAction = 'Stop'
    }
    if ($null -ne $identity) {
        $getParams.Identity = $identity
    }
    try {
        if ($useService) {
            $found = @(Get-TransportService @dcParams @getParams)
        }
        else {
            $found = @(Get-TransportServer @dcParams @getParams)
        }
    }
    catch {
        $module.FailJson(("Get-{0} failed for '{1}': {2}" -f $cmdletNoun, $identity, $_.Exception.Message), $_)
    }
    if ($found.Count -ne 1) {
        $module.FailJson(("Get-{0} returned {1} servers for '{2}'; name exactly one transport server" -f $cmdletNoun, $found.Count, $identity))
    }
    $service = $found[0]

    $before = [ordered]@{}
    $after = [ordered]@{}
    $changes = [ordered]@{}
    foreach ($key in $wanted.Keys) {
        if ($key -eq 'TransientFailureRetryCount') {
            $currentValue = ConvertTo-Text $service.TransientFailureRetryCount
            $wantedValue = ConvertTo-Text $wanted[$key]
        }
        else {
            $currentValue = ConvertTo-TimeSpanText $service.$key
            $wantedValue = ConvertTo-TimeSpanText $wanted[$key]
        }
        $before[$key] = $currentValue
        $after[$key] = $wantedValue
        if ($currentValue -ne $wantedValue) {
            $changes[$key] = $wanted[$key]
        }
    }
    $changed = $changes.Count -gt 0

    if ($changed -and -not $module.CheckMode) {
        $setParams = @{
            Confirm = $false
            ErrorAction = 'Stop'
        }
        foreach ($key in $changes.Keys) {
            $setParams[$key] = $changes[$key]
        }
        try {
            if ($null -ne $identity -and $useService) {
                Set-TransportService @dcParams @setParams -Identity $identity
            }
            elseif ($null -ne $identity) {
                Set-TransportServer @dcParams @setParams -Identity $identity
            }
            elseif ($useService) {
                # Edge Transport server: the local service, passed down the pipeline.
                $service | Set-TransportService @setParams
            }
            else {
                $service | Set-TransportServer @setParams
            }
        }
        catch {
            $module.FailJson(("Set-{0} failed: {1}" -f $cmdletNoun, $_.Exception.Message), $_)
        }
    }

    $module.Result.changed = $changed
    $module.Result.server = ConvertTo-Text $service.Name
    $module.Result.cmdlet = 'Set-' + $cmdletNoun
    $module.Result.changes = @($changes.Keys)
    $module.Result.retry = $after
    $module.Diff.before = $before
    $module.Diff.after = $after
}
finally {
    if ($null -ne $session) {
        Remove-PSSession -Session $session -ErrorAction SilentlyContinue
    }
}

$module.ExitJson()
