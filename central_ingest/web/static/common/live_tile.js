// One live camera tile: a WebSocket to central's live proxy (/api/v1/live/{agent}/{camera}/ws), each binary
// message one edge record (u32 BE header length | header JSON | u32 BE JPEG length | JPEG), the JPEG drawn on a
// canvas with createImageBitmap and the agent's detections drawn over it (boxes, lines with counts, zones,
// violation flashes). The video is never re-encoded: the overlay is drawn from the header's metadata.
// Shared by /live and the live grid of /projects. Plain JavaScript, no build step; values from the server are
// drawn as canvas text or set as textContent, never as HTML.
//
// Contract with the latency benchmark (keep exact): after drawing a frame the tile dispatches on window
//   new CustomEvent("ioc-live-frame", {detail: {agent_id, camera_id, sequence, drawn_at_ms, analysed_at_ms, canvas}})
// and keeps window.IOC_LIVE_STATS = {tiles: {"<agent>/<camera>": {...}}, first_frame_ms: {"<agent>/<camera>": ms}}
// (first_frame_ms: from the WebSocket open request to the first drawn frame).
"use strict";

window.IOC_LIVE_STATS = window.IOC_LIVE_STATS || { tiles: {}, first_frame_ms: {} };

window.IOC_LIVE = (() => {
  const MAX_HEADER_BYTES = 1 << 20; // a header is a few kB; anything larger is a broken stream
  const MAX_JPEG_BYTES = 16 << 20;
  const RETRY_BASE_MS = 500; // backoff: full jitter under base * 2^attempt, never above the ceiling
  const RETRY_CEILING_MS = 15000;
  const RETRY_FLOOR_MS = 250; // never hammer central in a tight loop, even on a lucky jitter draw
  const SILENCE_MS = 15000; // no message (frame, keepalive or status) for this long: reconnect
  const FLASH_MS = 3000; // violations of the last 3 s flash (the header says how old each is)
  const FINAL_CLOSE = {
    4401: ["Chưa đăng nhập hoặc phiên đã hết hạn", "Not signed in or the session expired"],
    4403: ["Không có quyền xem camera này", "Not allowed to view this camera"],
    4404: ["Không có camera này", "No such camera"],
  };
  const STATES = {
    idle: ["chưa chọn camera", "no camera", "muted"],
    connecting: ["đang kết nối", "connecting", "muted"],
    live: ["trực tiếp", "live", "ok"],
    stalled: ["chậm", "stalled", "warn"],
    down: ["mất tín hiệu", "down", "bad"],
    refused: ["bị từ chối", "refused", "bad"],
  };
  const CLASS_COLOURS = {
    car: "#22d3ee", motorcycle: "#facc15", motorbike: "#facc15", bicycle: "#a3e635", bus: "#fb923c",
    truck: "#f472b6", person: "#c4b5fd",
  };
  const decoder = new TextDecoder("utf-8");

  class RecordError extends Error {}

  function parseRecord(buffer) {
    // {header, jpeg: Uint8Array (may be empty)} of one binary message; RecordError when it is not one record.
    const view = new DataView(buffer);
    if (buffer.byteLength < 8) throw new RecordError(`record too short (${buffer.byteLength} bytes)`);
    const headerLength = view.getUint32(0, false);
    if (headerLength > MAX_HEADER_BYTES || 4 + headerLength + 4 > buffer.byteLength) {
      throw new RecordError(`bad header length ${headerLength}`);
    }
    const header = JSON.parse(decoder.decode(new Uint8Array(buffer, 4, headerLength)));
    const jpegLength = view.getUint32(4 + headerLength, false);
    const jpegStart = 8 + headerLength;
    if (jpegLength > MAX_JPEG_BYTES || jpegStart + jpegLength !== buffer.byteLength) {
      throw new RecordError(`bad JPEG length ${jpegLength}`);
    }
    if (!header || typeof header !== "object") throw new RecordError("header is not an object");
    return { header, jpeg: new Uint8Array(buffer, jpegStart, jpegLength) };
  }

  function retryDelayMs(attempt) {
    const cap = Math.min(RETRY_CEILING_MS, RETRY_BASE_MS * 2 ** Math.min(attempt, 16));
    return Math.max(RETRY_FLOOR_MS, Math.random() * cap);
  }

  function socketUrl(agentId, cameraId) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1/live/${encodeURIComponent(agentId)}/${encodeURIComponent(cameraId)}/ws`;
  }

  const num = (v) => (Number.isFinite(Number(v)) ? Number(v) : 0);

  // ---- drawing ------------------------------------------------------------------------------------
  function label(ctx, text, x, y, colour, scale) {
    ctx.font = `${Math.round(13 * scale)}px system-ui, sans-serif`;
    const w = ctx.measureText(text).width + 6 * scale, h = 17 * scale;
    const top = Math.max(0, y - h);
    ctx.fillStyle = "rgba(0, 0, 0, 0.72)";
    ctx.fillRect(x, top, w, h);
    ctx.fillStyle = colour;
    ctx.fillText(text, x + 3 * scale, top + h - 4 * scale);
  }

  function arrow(ctx, x1, y1, x2, y2, size) {
    const angle = Math.atan2(y2 - y1, x2 - x1);
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    ctx.lineTo(x2 - size * Math.cos(angle - 0.5), y2 - size * Math.sin(angle - 0.5));
    ctx.moveTo(x2, y2);
    ctx.lineTo(x2 - size * Math.cos(angle + 0.5), y2 - size * Math.sin(angle + 0.5));
    ctx.stroke();
  }

  function drawOverlay(ctx, header, width, height) {
    // Boxes are pixels of the analysed frame (header width x height); lines and zones are normalised 0..1.
    // Returns what was drawn: {boxes, lines, zones, violations}.
    const sx = width / Math.max(1, num(header.width) || width), sy = height / Math.max(1, num(header.height) || height);
    const scale = Math.max(0.6, Math.min(2.5, width / 640));
    const drawn = { boxes: 0, lines: 0, zones: 0, violations: 0 };
    ctx.lineWidth = 2 * scale;
    for (const zone of Array.isArray(header.zones) ? header.zones : []) {
      const points = Array.isArray(zone.points) ? zone.points : [];
      if (points.length < 3) continue;
      ctx.beginPath();
      points.forEach(([x, y], i) => (i ? ctx.lineTo(num(x) * width, num(y) * height) : ctx.moveTo(num(x) * width, num(y) * height)));
      ctx.closePath();
      ctx.fillStyle = "rgba(56, 189, 248, 0.12)";
      ctx.fill();
      ctx.strokeStyle = "#38bdf8";
      ctx.stroke();
      label(ctx, String(zone.name || zone.id || ""), num(points[0][0]) * width, num(points[0][1]) * height, "#e0f2fe", scale);
      drawn.zones += 1;
    }
    for (const line of Array.isArray(header.lines) ? header.lines : []) {
      if (!Array.isArray(line.start) || !Array.isArray(line.end)) continue;
      const x1 = num(line.start[0]) * width, y1 = num(line.start[1]) * height;
      const x2 = num(line.end[0]) * width, y2 = num(line.end[1]) * height;
      ctx.strokeStyle = "#fde047";
      ctx.lineWidth = 3 * scale;
      ctx.beginPath();
      ctx.moveTo(x1, y1);
      ctx.lineTo(x2, y2);
      ctx.stroke();
      // The two directions (the agent's convention): "in" crosses from the left of start->end to its right
      // (green arrow), "out" the other way (red). (nx, ny) points to the left side in image coordinates.
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2, len = Math.hypot(x2 - x1, y2 - y1) || 1;
      const nx = (y2 - y1) / len, ny = -(x2 - x1) / len, reach = 26 * scale;
      ctx.lineWidth = 2 * scale;
      ctx.strokeStyle = "#4ade80";
      arrow(ctx, mx + nx * reach, my + ny * reach, mx - nx * reach * 0.2, my - ny * reach * 0.2, 8 * scale);
      ctx.strokeStyle = "#f87171";
      arrow(ctx, mx - nx * reach, my - ny * reach, mx + nx * reach * 0.2, my + ny * reach * 0.2, 8 * scale);
      const name = String(line.name || line.id || "");
      const text = `${name}: ${line.in_label || "vào"} ${num(line.in_total)} · ${line.out_label || "ra"} ${num(line.out_total)}`;
      label(ctx, text, Math.min(x1, x2), Math.min(y1, y2) - 4 * scale, "#fef9c3", scale);
      drawn.lines += 1;
    }
    ctx.lineWidth = 2 * scale;
    for (const d of Array.isArray(header.detections) ? header.detections : []) {
      if (!Array.isArray(d.box) || d.box.length !== 4) continue;
      const [x1, y1, x2, y2] = d.box.map(num);
      const colour = CLASS_COLOURS[d.class] || "#e5e7eb";
      ctx.strokeStyle = colour;
      ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
      label(ctx, `${d.class} #${d.track_id}`, x1 * sx, y1 * sy, colour, scale);
      drawn.boxes += 1;
    }
    const flashing = (Array.isArray(header.violations) ? header.violations : []).filter((v) => num(v.age_ms) < FLASH_MS);
    if (flashing.length) {
      // A red frame that fades over the 3 s, a red box on the offender, the rule's name in both languages.
      const youngest = Math.min(...flashing.map((v) => num(v.age_ms)));
      ctx.strokeStyle = `rgba(239, 68, 68, ${Math.max(0.35, 1 - youngest / FLASH_MS)})`;
      ctx.lineWidth = 10 * scale;
      ctx.strokeRect(0, 0, width, height);
      ctx.lineWidth = 3 * scale;
      flashing.forEach((v, i) => {
        if (Array.isArray(v.box) && v.box.length === 4) {
          const [x1, y1, x2, y2] = v.box.map(num);
          ctx.strokeStyle = "#ef4444";
          ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
        }
        const who = v.track_id === null || v.track_id === undefined ? "" : ` #${v.track_id}`;
        const y = height - (14 + 20 * i) * scale; // bottom left: the zone and line labels sit at the top
        label(ctx, `⚠ ${v.label_vi || v.kind} / ${v.label_en || v.kind}${who}`, 12 * scale, y, "#fecaca", scale);
      });
      drawn.violations = flashing.length;
    }
    return drawn;
  }

  // ---- one tile -----------------------------------------------------------------------------------
  class LiveTile {
    // options: {agentId, cameraId, canvas, onState(state, vi, en), onFrame(header, drawn), onUnauthorized()}
    // onUnauthorized: called when central closes the socket with 4401 (no session any more); by default the
    // page shell's IOC.unauthorized(), which asks to sign in again.
    constructor(options) {
      this.agentId = options.agentId;
      this.cameraId = options.cameraId;
      this.key = `${this.agentId}/${this.cameraId}`;
      this.canvas = options.canvas;
      this.onState = options.onState || (() => {});
      this.onFrame = options.onFrame || (() => {});
      this.onUnauthorized = options.onUnauthorized || (() => {
        if (window.IOC && typeof window.IOC.unauthorized === "function") window.IOC.unauthorized();
      });
      this.socket = null;
      this.closed = false;
      this.attempt = 0;
      this.retryTimer = null;
      this.silenceTimer = null;
      this.decoding = false;
      this.pending = null; // the newest record waiting while one decodes (latest value; older ones dropped)
      this.last = { sequence: -1, analysedAt: -Infinity };
      this.openedAt = 0;
      this.header = null; // the last drawn header (live counts)
      this.stats = {
        agent_id: this.agentId, camera_id: this.cameraId, state: "connecting", frames_drawn: 0,
        frames_skipped: 0, bad_records: 0, keepalives: 0, reconnects: 0, last_sequence: null,
        last_boxes: 0, boxes_drawn: 0, last_latency_ms: null, first_frame_ms: null, close_code: null,
      };
      window.IOC_LIVE_STATS.tiles[this.key] = this.stats;
    }

    start() {
      this.closed = false;
      this.connect();
      return this;
    }

    setState(state, vi = null, en = null) {
      this.stats.state = state;
      const [sv, se] = STATES[state] || STATES.down;
      this.onState(state, vi || sv, en || se);
    }

    connect() {
      if (this.closed) return;
      this.setState("connecting");
      this.openedAt = performance.now();
      this.firstDrawn = false;
      let socket;
      try {
        socket = new WebSocket(socketUrl(this.agentId, this.cameraId));
      } catch (error) {
        this.scheduleRetry();
        return;
      }
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      socket.addEventListener("open", () => { this.attempt = 0; this.watch(); });
      socket.addEventListener("message", (event) => this.receive(event.data));
      socket.addEventListener("close", (event) => this.closedBy(event.code, event.reason));
    }

    watch() {
      clearTimeout(this.silenceTimer);
      this.silenceTimer = setTimeout(() => {
        if (this.socket) this.socket.close(4000, "silent");
      }, SILENCE_MS);
    }

    receive(data) {
      this.watch();
      if (typeof data === "string") {
        let message;
        try { message = JSON.parse(data); } catch (_) { this.stats.bad_records += 1; return; }
        if (message && message.type === "status" && STATES[message.state]) {
          this.setState(message.state, message.detail_vi || null, message.detail_en || null);
        }
        return;
      }
      let record;
      try { record = parseRecord(data); } catch (error) {
        this.stats.bad_records += 1;
        return;
      }
      if (record.header.type === "keepalive" || record.jpeg.length === 0) { this.stats.keepalives += 1; return; }
      if (this.decoding) {
        if (this.pending) this.stats.frames_skipped += 1;
        this.pending = record;
        return;
      }
      this.draw(record);
    }

    isOlder(header) {
      const analysedAt = num(header.analysed_at_ms), sequence = num(header.sequence);
      if (analysedAt < this.last.analysedAt) return true;
      return sequence <= this.last.sequence && analysedAt <= this.last.analysedAt;
    }

    async draw(record) {
      const header = record.header;
      if (this.isOlder(header)) { this.stats.frames_skipped += 1; return; }
      this.decoding = true;
      try {
        const bitmap = await createImageBitmap(new Blob([record.jpeg], { type: "image/jpeg" }));
        if (this.closed) { bitmap.close(); return; }
        if (this.isOlder(header)) { bitmap.close(); this.stats.frames_skipped += 1; return; }
        const canvas = this.canvas;
        if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
          canvas.width = bitmap.width;
          canvas.height = bitmap.height;
        }
        const ctx = canvas.getContext("2d");
        ctx.drawImage(bitmap, 0, 0);
        bitmap.close();
        const drawn = drawOverlay(ctx, header, canvas.width, canvas.height);
        this.last = { sequence: num(header.sequence), analysedAt: num(header.analysed_at_ms) };
        this.header = header;
        this.account(header, drawn);
        this.onFrame(header, drawn);
        window.dispatchEvent(new CustomEvent("ioc-live-frame", { detail: {
          agent_id: this.agentId, camera_id: this.cameraId, sequence: header.sequence, drawn_at_ms: Date.now(),
          analysed_at_ms: header.analysed_at_ms, canvas,
        } }));
      } catch (error) {
        this.stats.bad_records += 1; // an undecodable JPEG: counted, the next frame is tried
      } finally {
        this.decoding = false;
        const next = this.pending;
        this.pending = null;
        if (next && !this.closed) this.draw(next);
      }
    }

    account(header, drawn) {
      const stats = this.stats;
      stats.frames_drawn += 1;
      stats.last_sequence = header.sequence;
      stats.last_boxes = drawn.boxes;
      stats.boxes_drawn += drawn.boxes;
      stats.last_latency_ms = Number.isFinite(Number(header.analysed_at_ms)) ? Date.now() - header.analysed_at_ms : null;
      if (!this.firstDrawn) {
        this.firstDrawn = true;
        const ms = Math.round(performance.now() - this.openedAt);
        if (stats.first_frame_ms === null) stats.first_frame_ms = ms;
        if (!(this.key in window.IOC_LIVE_STATS.first_frame_ms)) window.IOC_LIVE_STATS.first_frame_ms[this.key] = ms;
      }
      if (stats.state !== "live") this.setState("live");
    }

    closedBy(code, reason) {
      clearTimeout(this.silenceTimer);
      this.socket = null;
      this.stats.close_code = code;
      if (this.closed) return;
      const final = FINAL_CLOSE[code];
      if (final) {
        // Access was refused: retrying cannot help; say why. A session that ended (4401) is the user's to
        // renew: the page asks them to sign in again rather than leaving the tile refused for good.
        this.setState("refused", final[0], final[1]);
        if (code === 4401) this.onUnauthorized();
        return;
      }
      this.setState("down");
      this.scheduleRetry();
    }

    scheduleRetry() {
      if (this.closed) return;
      clearTimeout(this.retryTimer);
      const delay = retryDelayMs(this.attempt);
      this.attempt += 1;
      this.stats.reconnects += 1;
      this.retryTimer = setTimeout(() => this.connect(), delay);
    }

    close() {
      this.closed = true;
      clearTimeout(this.retryTimer);
      clearTimeout(this.silenceTimer);
      if (this.socket) this.socket.close(1000, "tile closed");
      this.socket = null;
      this.pending = null;
      if (window.IOC_LIVE_STATS.tiles[this.key] === this.stats) delete window.IOC_LIVE_STATS.tiles[this.key];
    }
  }

  function stateInfo(state) {
    const [vi, en, chip] = STATES[state] || STATES.down;
    return { vi, en, chip };
  }

  function lineTotals(header) {
    // [{name, inLabel, outLabel, inTotal, outTotal, in: {class: n}, out: {class: n}}] of the last drawn header.
    return (header && Array.isArray(header.lines) ? header.lines : []).map((line) => ({
      name: String(line.name || line.id || ""), inLabel: String(line.in_label || "vào / in"),
      outLabel: String(line.out_label || "ra / out"), inTotal: num(line.in_total), outTotal: num(line.out_total),
      in: line.in && typeof line.in === "object" ? line.in : {}, out: line.out && typeof line.out === "object" ? line.out : {},
    }));
  }

  return { LiveTile, RecordError, parseRecord, drawOverlay, stateInfo, lineTotals, socketUrl };
})();
