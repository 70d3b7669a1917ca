/* passersby kiosk: what every page shares - config, token, the frame stream, controls.
 *
 * Frame stream protocol (/ws/<screen>, see passersby/web/protocol.py):
 *   server -> client, binary: [uint32 big-endian N][N bytes UTF-8 JSON header][JPEG bytes]
 *   client -> server: "ack" once the frame is drawn; the server then sends the newest frame.
 */
'use strict';

const Passersby = (() => {
  const MIN_RETRY_MS = 250;
  const MAX_RETRY_MS = 5000;

  /** The JSON the server put in the page: {screens, screen?, controls: "ok"|"missing"|"wrong"}. */
  function config() {
    return JSON.parse(document.getElementById('passersby-config').textContent);
  }

  /** The control token this page was opened with (?token=...), or "". */
  function token() {
    return new URLSearchParams(location.search).get('token') || '';
  }

  /** Split a frame message into {header, jpeg}; throws if malformed. */
  function parseFrame(buffer) {
    const n = new DataView(buffer).getUint32(0);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
    return { header, jpeg: new Uint8Array(buffer, 4 + n) };
  }

  /** Waits for the browser to paint what was just put on screen. */
  function nextPaint() {
    return new Promise((resolve) => requestAnimationFrame(() => resolve()));
  }

  /**
   * Shows one screen's frames in an <img>; reconnects with backoff when the server goes away.
   * After each drawn frame: img.dataset.frameIndex = the frame's index.
   * handlers: onFrame(header), onState("connecting" | "live" | "offline").
   */
  class FrameStream {
    constructor(screen, img, handlers = {}) {
      this.screen = screen;
      this.img = img;
      this.handlers = handlers;
      this.url = null;
      this.ws = null;
      this.retryMs = MIN_RETRY_MS;
    }

    start() {
      this.connect();
      return this;
    }

    connect() {
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      const ws = new WebSocket(`${scheme}//${location.host}/ws/${encodeURIComponent(this.screen)}`);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      this.setState('connecting');
      ws.onopen = () => this.setState('live');
      ws.onmessage = (event) => this.receive(ws, event.data);
      ws.onclose = () => this.closed(ws);
    }

    closed(ws) {
      if (ws !== this.ws) return;
      this.setState('offline');
      // Keep the last face on screen while the server is away; retry with backoff.
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    }

    setState(state) {
      if (this.handlers.onState) this.handlers.onState(state);
    }

    async receive(ws, data) {
      try {
        if (!(data instanceof ArrayBuffer)) return;
        this.retryMs = MIN_RETRY_MS;
        const { header, jpeg } = parseFrame(data);
        await this.draw(new Blob([jpeg], { type: 'image/jpeg' }));
        this.img.dataset.frameIndex = String(header.index);
        if (this.handlers.onFrame) this.handlers.onFrame(header);
        await nextPaint();
      } catch (err) {
        console.warn('passersby: frame dropped', err);
      } finally {
        // Ack even after a bad frame, or the server would wait for us forever.
        if (ws.readyState === WebSocket.OPEN) ws.send('ack');
      }
    }

    /** Decode off screen first, so the visible image swaps in one go. */
    async draw(blob) {
      const url = URL.createObjectURL(blob);
      try {
        const probe = new Image();
        probe.src = url;
        await probe.decode();
      } catch (err) {
        URL.revokeObjectURL(url);
        throw err;
      }
      const previous = this.url;
      this.img.src = url;
      this.url = url;
      if (previous) URL.revokeObjectURL(previous);
    }
  }

  /** Counts drawn frames; calls show(fps) once a second. */
  class FpsMeter {
    constructor(show) {
      this.count = 0;
      this.since = performance.now();
      setInterval(() => {
        const now = performance.now();
        show((this.count * 1000) / (now - this.since));
        this.count = 0;
        this.since = now;
      }, 1000);
    }

    tick() {
      this.count += 1;
    }
  }

  /** GET /api/status; resolves to the status object, rejects if the server is away. */
  async function fetchStatus() {
    const response = await fetch('/api/status', { cache: 'no-store' });
    if (!response.ok) throw new Error(`status: HTTP ${response.status}`);
    return response.json();
  }

  /** POST /api/control; resolves to {ok, error?}, never rejects. */
  async function sendControl(action, value, screen) {
    const request = { action };
    if (value !== undefined) request.value = value;
    if (screen !== undefined) request.screen = screen; // press / next: that screen only
    try {
      const response = await fetch('/api/control', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token()}` },
        body: JSON.stringify(request),
      });
      const body = await response.json().catch(() => ({}));
      return response.ok ? { ok: true } : { ok: false, error: body.error || `HTTP ${response.status}` };
    } catch (err) {
      return { ok: false, error: 'server unreachable' };
    }
  }

  /** POST /api/capture: {ok: true, id, quality, matches_shown, ...} or {ok: false, error}. */
  async function sendCapture(screen) {
    try {
      const response = await fetch('/api/capture', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token()}` },
        body: JSON.stringify({ screen }),
      });
      const body = await response.json().catch(() => ({}));
      return response.ok ? body : { ok: false, error: body.error || `HTTP ${response.status}` };
    } catch (err) {
      return { ok: false, error: 'server unreachable' };
    }
  }

  /** Why controls are refused on this page, or "" when they are allowed. */
  function lockedReason(cfg) {
    if (cfg.controls === 'ok') return '';
    if (cfg.controls === 'wrong') return 'Controls locked: the token in this address is not valid.';
    return 'Controls locked: open this page with ?token=… (the server prints the address).';
  }

  return { config, token, parseFrame, FrameStream, FpsMeter, fetchStatus, sendControl, sendCapture, lockedReason };
})();
