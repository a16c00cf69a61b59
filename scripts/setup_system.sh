#!/usr/bin/env bash
# System packages the test suite needs (Debian 12 "bookworm"), installed only when missing.
#
# RTSP tests (tests/streamer/io/test_rtsp.py) run GStreamer's gst-rtsp-server as a
# relay on loopback (tests/rtsp_server.py) under the system Python, because
# PyGObject comes from Debian, not from the project's venv. It speaks RTP over
# TCP and UDP, for both publishing (ANNOUNCE/RECORD, fawn's RTSP sink) and
# playing (DESCRIBE/PLAY, fawn's RTSP source). Debian's rtsp-server-perl was not
# chosen: it relays RTP over UDP only, and fawn uses TCP.
#
#   python3-gi, gir1.2-gst-rtsp-server-1.0  -> the server and its Python bindings
#   gstreamer1.0-plugins-base               -> appsrc/appsink (the relay between publisher and readers)
#   gstreamer1.0-plugins-good               -> rtph264pay/rtph264depay
#   gstreamer1.0-plugins-bad                -> h264parse (repeats SPS/PPS so readers can join any time)
#
# Usage: sudo scripts/setup_system.sh   (idempotent; non-interactive; safe to re-run)
set -euo pipefail

PACKAGES=(
  python3
  python3-gi
  gir1.2-gstreamer-1.0
  gir1.2-gst-plugins-base-1.0
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup_system: all system packages already installed"
else
  if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
  else
    SUDO=
  fi
  echo "setup_system: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# check the RTSP server can actually start its GStreamer pieces
/usr/bin/python3 - <<'EOF'
import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: F401

Gst.init(None)
missing = [e for e in ("rtph264depay", "rtph264pay", "h264parse", "appsrc", "appsink")
           if Gst.ElementFactory.find(e) is None]
if missing:
    raise SystemExit("setup_system: missing GStreamer elements: " + ", ".join(missing))
print("setup_system: gst-rtsp-server ready (" + Gst.version_string() + ")")
EOF
