#!powershell

# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.smarthost.relay.plugins.module_utils._ExchangeShell

# Sets the outbound retry intervals of an Exchange transport server: Set-TransportService (Exchange 2013
# and later) or Set-TransportServer (Exchange 2010). Every option reaches this script as data in
# $module.Params. The documentation is plugins/modules/exchange_transport_retry.py.

# The session options (how the Exchange Management Shell is loaded) come from Get-ExchangeSessionSpec.
$spec = @{
    options = @{
        server = @{ type = 'str' }
        transient_failure_retry_interval = @{ type = 'str' }
        transient_failure_retry_count = @{ type = 'int' }
        outbound_connection_failure_retry_interval = @{ type = 'str' }
        message_retry_interval = @{ type = 'str' }
        domain_controller = @{ type = 'str' }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec, @(Get-ExchangeSessionSpec))
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
    # Added here: a snap-in's cmdlets reach only the session state that adds it, not the module util's.
    foreach ($snapin in @(Resolve-ExchangeSnapin -Module $module)) {
        Add-PSSnapin -Name $snapin -ErrorAction Stop
    }
    $session = Import-ExchangeRemoteShell -Module $module -CommandName $commands
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
    Remove-ExchangeRemoteShell -Session $session
}

$module.ExitJson()
