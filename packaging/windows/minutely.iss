; Inno Setup script: Minutely's Windows installer, from the PyInstaller folder dist\minutely.
; Build on Windows (Inno Setup 6):
;   python packaging\build.py
;   iscc /DAppVersion=0.1.0 packaging\windows\minutely.iss
; (CI passes the version read from app\__init__.py). Output: dist\Minutely-<version>-windows-x64-setup.exe
; NOT RUN on the project's Linux build machines: written carefully, checked by CI on Windows.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z (from app/__init__.py)
#endif
#ifndef Variant
  #define Variant "cpu"
#endif

[Setup]
AppId={{6E3A1C2B-7F64-4B8E-9C51-2D7A4E9B0F13}
AppName=Minutely
AppVersion={#AppVersion}
AppVerName=Minutely {#AppVersion}
AppPublisher=Minutely
DefaultDirName={autopf}\Minutely
DefaultGroupName=Minutely
DisableProgramGroupPage=yes
; per-user install by default (no admin prompt); an admin may choose all users
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=Minutely-{#AppVersion}-windows-x64-{#Variant}-setup
SetupIconFile=..\..\build\icons\minutely.ico
UninstallDisplayIcon={app}\minutely.exe
Compression=lzma2/ultra64
SolidCompression=yes
WizardStyle=modern
ChangesAssociations=yes
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "openwith"; Description: "Offer Minutely in ""Open with"" for audio and video files"; GroupDescription: "Files:"

[Files]
; the whole one-folder bundle (minutely.exe + _internal\), and a bundled model when built --with-model
Source: "..\..\dist\minutely\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Minutely"; Filename: "{app}\minutely.exe"
Name: "{autodesktop}\Minutely"; Filename: "{app}\minutely.exe"; Tasks: desktopicon

[Registry]
; "Open with" for common audio/video types (never taking over the default player)
Root: HKA; Subkey: "Software\Classes\Minutely.Recording"; ValueType: string; ValueName: ""; ValueData: "Recording (Minutely)"; Flags: uninsdeletekey; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\Minutely.Recording\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\minutely.exe,0"; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\Minutely.Recording\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\minutely.exe"" ""%1"""; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.mp3\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.m4a\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.wav\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.flac\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.ogg\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.opus\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.mp4\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.mkv\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.webm\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith
Root: HKA; Subkey: "Software\Classes\.mov\OpenWithProgids"; ValueType: string; ValueName: "Minutely.Recording"; ValueData: ""; Flags: uninsdeletevalue; Tasks: openwith

[Run]
Filename: "{app}\minutely.exe"; Description: "{cm:LaunchProgram,Minutely}"; Flags: nowait postinstall skipifsilent

; The user's data (%LOCALAPPDATA%\Minutely: library, models, settings) is never removed by the uninstaller.
