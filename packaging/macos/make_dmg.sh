#!/usr/bin/env bash
# macOS: build Minutely.app (packaging/build.py) and wrap it in a .dmg with a
# link to /Applications. Run on a Mac (hdiutil is macOS-only):
#   bash packaging/macos/make_dmg.sh [--with-model M.gguf MMPROJ.gguf]
# Signing/notarizing (optional): MINUTELY_CODESIGN_IDENTITY="Developer ID Application: ..." and
# NOTARY_PROFILE=<a notarytool keychain profile>.
# NOT RUN on the project's Linux build machines: written carefully, checked by CI on macOS.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
"$PY" packaging/build.py "$@"
VERSION=$("$PY" -c 'import re;print(re.search(r"__version__\s*=\s*\"([^\"]+)\"",open("app/__init__.py").read()).group(1))')
ARCH=$(uname -m)
APP=dist/Minutely.app
test -d "$APP"
/usr/libexec/PlistBuddy -c "Print :NSMicrophoneUsageDescription" "$APP/Contents/Info.plist" >/dev/null
if [[ -n "${MINUTELY_CODESIGN_IDENTITY:-}" ]]; then
  codesign --force --deep --options runtime --timestamp \
    --entitlements packaging/macos/entitlements.plist \
    --sign "$MINUTELY_CODESIGN_IDENTITY" "$APP"
fi
STAGE=$(mktemp -d)
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
DMG="dist/Minutely-$VERSION-macos-$ARCH.dmg"
rm -f "$DMG"
hdiutil create -volname "Minutely $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
rm -rf "$STAGE"
if [[ -n "${MINUTELY_CODESIGN_IDENTITY:-}" && -n "${NOTARY_PROFILE:-}" ]]; then
  codesign --sign "$MINUTELY_CODESIGN_IDENTITY" --timestamp "$DMG"
  xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$DMG"
fi
echo "dmg: $DMG ($(du -h "$DMG" | cut -f1))"
