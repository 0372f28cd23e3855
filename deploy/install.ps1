<#
.SYNOPSIS
  Installs VelozBackupAgent as a Windows service (or removes it), the Windows counterpart of deploy/install.sh.

.DESCRIPTION
  Run in an elevated PowerShell (5.1 or 7) on the machine, from a build published for Windows:
    dotnet publish src\VelozBackupAgent.Host -c Release -r win-x64 --self-contained false -o .\publish
    .\deploy\install.ps1 -From .\publish
  What it does, each step safe to repeat:
    - copies the published files to -Prefix (default C:\Program Files\VelozBackupAgent);
    - creates -DataRoot (default C:\ProgramData\VelozBackupAgent) with backup\, log\ and state, each with an
      owner-only ACL (inheritance removed; SYSTEM and Administrators full control: the Windows meaning of 0700);
    - writes DataRoot\appsettings.json with Windows paths unless one exists (an edited configuration survives);
    - registers the event source VelozBackupAgent in the Application log (warnings and errors go there);
    - creates the service VelozBackupAgent (LocalSystem, automatic start, "veloz-backup.exe run --config …")
      or updates its command line, and sets restart on failure with sc.exe failure (10 s, 10 s, 60 s; the
      failure count resets after a day), also when the process exits with a non-zero code (sc.exe failureflag);
    - starts it.
  -Uninstall stops and deletes the service and the event source and removes -Prefix; DataRoot (every backup,
  the configuration, the logs) is kept.
  NOT RUN in this project's CI (no Windows machine there); the README's Windows section says what was checked.
#>
[CmdletBinding()]
param(
    [string] $From,
    [string] $Prefix = (Join-Path $env:ProgramFiles 'VelozBackupAgent'),
    [string] $DataRoot = (Join-Path $env:ProgramData 'VelozBackupAgent'),
    [switch] $Uninstall,
    [switch] $NoStart
)

$ErrorActionPreference = 'Stop'
$ServiceName = 'VelozBackupAgent'

function Fail([string] $message) {
    Write-Host "install.ps1: $message" -ForegroundColor Red
    exit 1
}

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail 'run this in an elevated PowerShell (Run as administrator)'
}

# Owner-only: no inherited entries, full control for SYSTEM (the service) and Administrators only.
function Set-PrivateAcl([string] $path) {
    & icacls.exe $path /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' /Q | Out-Null
    if ($LASTEXITCODE -ne 0) { Fail "icacls could not restrict $path" }
}

function New-PrivateDirectory([string] $path) {
    if (-not (Test-Path -LiteralPath $path)) { New-Item -ItemType Directory -Path $path | Out-Null }
    Set-PrivateAcl $path
}

$existing = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue

if ($Uninstall) {
    if ($existing) {
        if ($existing.Status -ne 'Stopped') { Stop-Service -Name $ServiceName -Force }
        & sc.exe delete $ServiceName | Out-Null
    }
    if ([System.Diagnostics.EventLog]::SourceExists($ServiceName)) { [System.Diagnostics.EventLog]::DeleteEventSource($ServiceName) }
    if (Test-Path -LiteralPath $Prefix) { Remove-Item -LiteralPath $Prefix -Recurse -Force }
    Write-Host "install.ps1: removed the service and $Prefix; kept $DataRoot (backups, configuration, logs)"
    exit 0
}

if (-not $From) { Fail '-From is required: the directory of dotnet publish -r win-x64 (see the help)' }
$exeSource = Join-Path $From 'veloz-backup.exe'
if (-not (Test-Path -LiteralPath $exeSource)) { Fail "$exeSource not found: publish with -r win-x64 first" }

if ($existing -and $existing.Status -ne 'Stopped') { Stop-Service -Name $ServiceName -Force }

New-Item -ItemType Directory -Path $Prefix -Force | Out-Null
Copy-Item -Path (Join-Path $From '*') -Destination $Prefix -Recurse -Force

New-PrivateDirectory $DataRoot
foreach ($sub in 'backup', 'log', 'wal') { New-PrivateDirectory (Join-Path $DataRoot $sub) }

$config = Join-Path $DataRoot 'appsettings.json'
if (-not (Test-Path -LiteralPath $config)) {
    # The shipped defaults with Windows paths; edit it, then Restart-Service VelozBackupAgent.
    $settings = Get-Content -Raw -LiteralPath (Join-Path $Prefix 'appsettings.json') | ConvertFrom-Json
    $settings.Backup.LocalRoot = Join-Path $DataRoot 'backup'
    $settings.Backup.Log.File = Join-Path $DataRoot 'log\backup.log'
    $settings.Backup.Wal.Directory = Join-Path $DataRoot 'wal'
    $settings | ConvertTo-Json -Depth 20 | Set-Content -LiteralPath $config -Encoding UTF8
    Set-PrivateAcl $config
    Write-Host "install.ps1: wrote $config; set Backup:Config:Root, Backup:Database and Backup:Secrets for this machine"
}

if (-not [System.Diagnostics.EventLog]::SourceExists($ServiceName)) {
    [System.Diagnostics.EventLog]::CreateEventSource($ServiceName, 'Application')
}

$exe = Join-Path $Prefix 'veloz-backup.exe'
$binaryPath = "`"$exe`" run --config `"$config`""
if ($existing) {
    & sc.exe config $ServiceName binPath= $binaryPath start= auto | Out-Null
} else {
    New-Service -Name $ServiceName -BinaryPathName $binaryPath -DisplayName 'VelozBackupAgent' `
        -Description 'Backs up the VeloZ order WAL, configuration, database and secrets' -StartupType Automatic | Out-Null
}
if ($LASTEXITCODE -ne 0 -and $LASTEXITCODE -ne $null) { Fail "sc.exe config failed ($LASTEXITCODE)" }

# Restart on failure, like systemd's Restart=on-failure RestartSec=10s; failureflag 1 also counts an exit
# with a non-zero code (the agent's exit 2 on a bad configuration) as a failure.
& sc.exe failure $ServiceName reset= 86400 actions= restart/10000/restart/10000/restart/60000 | Out-Null
& sc.exe failureflag $ServiceName 1 | Out-Null

if (-not $NoStart) {
    Start-Service -Name $ServiceName
    Write-Host "install.ps1: $ServiceName is $((Get-Service -Name $ServiceName).Status)"
}
