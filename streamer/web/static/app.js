// fawn serve page: one WebRTC connection (no trickle ICE), live stats, run-time controls.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);
const ui = {
  video: $("video"), start: $("start"), stop: $("stop"), status: $("status"),
  method: $("method"), mode: $("mode"), labels: $("labels"), hint: $("control-hint"),
  input: $("input-line"), cameraNote: $("camera-note"), stream: $("stream"), streamLabel: $("stream-label"),
};

// State read by tests and by the stats loop.
window.fawn = { state: "idle", error: null, peer: null, server: null, pc: null };

function setState(state, message) {
  window.fawn.state = state;
  ui.status.textContent = message || state;
  ui.status.className = state === "error" ? "error" : "";
}

async function api(path, body) {
  const headers = {};
  if (token) headers["X-Fawn-Token"] = token;
  const init = { headers, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${path}: HTTP ${response.status}`);
  return data;
}

// The server reports URLs without passwords already; mask any that slipped through before showing text.
const redact = (text) => String(text)
  .replace(/(\b[A-Za-z][A-Za-z0-9+.-]*:\/{1,2}[^\s/@:]*):[^\s/]*@/g, "$1:***@")
  .replace(/([?&;](?:password|passwd|pass|pwd|secret|token|api_?key|key|auth|sig|signature)=)[^&;#\s]*/gi, "$1***");

// One line per source: its state (running, retrying, failed...), its URL (redacted) and why it is down.
function showStreams(streams) {
  const items = Object.entries(streams || {}).map(([name, s]) => {
    const li = document.createElement("li");
    li.className = `stream-state ${s.state || ""}`;
    li.dataset.stream = name;
    const parts = [`${name}: ${s.state || "?"}`];
    if (s.source) parts.push(`(${s.source})`);
    if (s.error) parts.push(`— ${s.error}`);
    li.textContent = redact(parts.join(" "));
    return li;
  });
  $("stream-states").replaceChildren(...items);
}

function fillSelect(select, values, current) {
  select.replaceChildren(...values.map((v) => new Option(v, v, false, v === current)));
}

function showServer(info, controls) {
  window.fawn.server = info;
  const camera = info.input === "camera";
  ui.input.textContent = camera
    ? "No source on the server: use your camera, it comes back anonymized."
    : (info.streams || []).length > 1 ? `Sources: ${info.streams.length} streams (${info.streams.join(", ")})`
    : `Source: ${redact(info.source)}`;
  ui.start.textContent = camera ? "Use my camera" : "Watch";
  ui.cameraNote.hidden = !camera;
  const streams = info.streams || [];
  const wanted = new URLSearchParams(location.search).get("stream");
  fillSelect(ui.stream, streams, streams.includes(wanted) ? wanted : streams[0]);
  ui.streamLabel.hidden = streams.length < 2;
  fillSelect(ui.method, info.methods, controls.method);
  fillSelect(ui.mode, info.modes, controls.mode);
  ui.labels.checked = controls.labels;
  ui.mode.disabled = !info.mode_switching;
  ui.hint.textContent = info.gallery ? "" : "No gallery loaded: every face is anonymized.";
  ui.start.disabled = false;
  if (!camera && new URLSearchParams(location.search).get("autostart") !== "0") start();
}

function waitIceGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);
  });
}

async function start() {
  ui.start.disabled = true;
  setState("connecting", "connecting…");
  const info = window.fawn.server;
  const pc = new RTCPeerConnection({ iceServers: info.ice_servers || [] });
  window.fawn.pc = pc;
  try {
    if (info.input === "camera") {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
      });
      const track = stream.getVideoTracks()[0];
      // keep the resolution (faces need pixels to be found): drop frame rate first when constrained
      track.contentHint = "detail";
      pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
      window.fawn.camera = stream;
    } else {
      pc.addTransceiver("video", { direction: "recvonly" });
    }
    pc.addEventListener("track", (event) => {
      ui.video.srcObject = new MediaStream([event.track]);
      ui.video.play().catch(() => {});
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") setState("playing", "live");
      if (pc.connectionState === "failed") setState("error", "connection failed");
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitIceGathering(pc, 5000);
    const offer = { sdp: pc.localDescription.sdp, type: pc.localDescription.type };
    if (info.input !== "camera" && ui.stream.value) offer.stream = ui.stream.value;
    const answer = await api("/offer", offer);
    window.fawn.peer = answer.peer;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    ui.stop.disabled = false;
  } catch (err) {
    stop();
    setState("error", String(err.message || err));
    window.fawn.error = String(err.message || err);
  }
}

function stop() {
  const { pc, camera } = window.fawn;
  if (pc) pc.close();
  if (camera) camera.getTracks().forEach((t) => t.stop());
  Object.assign(window.fawn, { pc: null, camera: null, peer: null });
  ui.video.srcObject = null;
  ui.start.disabled = false;
  ui.stop.disabled = true;
  setState("idle");
}

async function control(change) {
  try {
    const controls = await api("/control", change);
    ui.method.value = controls.method;
    ui.mode.value = controls.mode;
    ui.labels.checked = controls.labels;
  } catch (err) {
    setState(window.fawn.state, String(err.message || err));
  }
}

// Browser-side share of the end-to-end latency: network, jitter buffer, decode (and encode for a camera).
async function browserDelays(pc) {
  const out = { ms: 0, fps: null, size: null, codec: null };
  if (!pc) return out;
  const report = await pc.getStats();
  const codecs = {};
  report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      if (s.jitterBufferEmittedCount) out.ms += (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
      if (s.framesDecoded) out.ms += (1000 * s.totalDecodeTime) / s.framesDecoded;
      out.fps = s.framesPerSecond;
      if (s.frameWidth) out.size = `${s.frameWidth}x${s.frameHeight}`;
      out.codec = codecs[s.codecId] || null;
    }
    if (s.type === "outbound-rtp" && s.kind === "video" && s.framesEncoded) {
      out.ms += (1000 * s.totalEncodeTime) / s.framesEncoded;
    }
    if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
      const legs = window.fawn.server && window.fawn.server.input === "camera" ? 1 : 0.5;
      out.ms += 1000 * s.currentRoundTripTime * legs;
    }
  });
  return out;
}

const fmt = (v, unit) => (v === null || v === undefined ? "–" : `${Math.round(v)}${unit || ""}`);

async function refreshStats() {
  try {
    const query = new URLSearchParams();
    if (window.fawn.peer) query.set("peer", window.fawn.peer);
    else if (ui.stream.value) query.set("stream", ui.stream.value);
    const data = await api(`/stats${query.size ? `?${query}` : ""}`);
    showStreams(data.streams);
    if (data.server.loading) {  // the page answers while the models load: start once they are ready
      ui.input.textContent = "fawn is loading its models…";
      window.fawn.stats = data;
      return;
    }
    if (!window.fawn.server) showServer(data.server, data.controls);
    const s = data.stream;
    const b = await browserDelays(window.fawn.pc);
    $("s-fps").textContent = s ? `${s.fps.toFixed(1)} / ${fmt(b.fps)}` : "–";
    $("s-latency").textContent = s ? fmt(s.latency_ms, " ms") : "–";
    $("s-e2e").textContent = s && window.fawn.pc ? fmt(s.latency_ms + b.ms, " ms") : "–";
    $("s-faces").textContent = s ? s.faces : "–";
    $("s-tracks").textContent = s ? s.tracks : "–";
    $("s-visible").textContent = s ? (s.visible.length ? s.visible.join(", ") : "none") : "–";
    $("s-anon").textContent = s ? s.faces_anonymized : "–";
    $("s-peers").textContent = `${data.peers} / ${data.server.max_peers}`;
    $("s-video").textContent = b.size ? `${b.size} ${b.codec || ""}` : "–";
    if (s && s.state === "retrying") setState("retrying", redact(`source unreachable, retrying: ${s.error || ""}`));
    else if (s && s.error) setState("error", redact(`source: ${s.error}`));
    else if (window.fawn.state === "retrying") setState(window.fawn.pc ? "playing" : "idle", window.fawn.pc ? "live" : "idle");
    window.fawn.stats = data;
  } catch (err) {
    if (window.fawn.state === "idle") setState("error", String(err.message || err));
  }
}

ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", stop);
ui.stream.addEventListener("change", () => { if (window.fawn.pc) { stop(); start(); } });
ui.method.addEventListener("change", () => control({ method: ui.method.value }));
ui.mode.addEventListener("change", () => control({ mode: ui.mode.value }));
ui.labels.addEventListener("change", () => control({ labels: ui.labels.checked }));
refreshStats();
setInterval(refreshStats, 1000);
