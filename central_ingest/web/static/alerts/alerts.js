// The operators' alert page: a live feed (server-sent events merged with the alerts still open when the page
// loaded), the numbers and evidence behind each alert, acknowledge/resolve with a comment, an optional sound
// for new warning/critical alerts, and the history with filters and each alert's transitions.
// Plain browser JavaScript, no build step, no CDN; every value from the server goes into the page as text
// (textContent / SVG text), never as HTML.
"use strict";

(() => {
  const { $, el, svg, api, fmtTime, fmtNumber, bilingual, showError } = window.IOC;

  const STREAM_URL = "/api/v1/alerts/stream";
  const ACT_ROLES = ["operator", "admin"];
  const OPEN_PAGE = 500; // open + acknowledged alerts loaded per status at start; more: a note points to History
  const HISTORY_PAGE = 50;
  const MAX_ANNOUNCEMENTS = 5; // the aria-live log keeps the newest few (drop oldest)
  const MAX_SEEN = 2000; // remembered (alert, changed_at) pairs, to play each notice once (drop oldest)
  const MAX_RESOLVED = 2000; // remembered resolved alerts, so that a late answer cannot bring one back (drop oldest)
  const MAX_BAD_FRAMES = 10; // unreadable stream frames kept for inspection (drop oldest), all counted
  const RECONNECT = { first_ms: 1000, factor: 2, ceiling_ms: 30000, jitter: 0.2 };
  const BEEP_GAP_MS = 1500; // a burst of alerts makes one sound, not one per alert (the rest are counted)
  const SOUND_KEY = "ioc.alerts.sound";
  const PROVINCE_OFFSET = "+07:00"; // Asia/Ho_Chi_Minh has no daylight saving time

  const { SEVERITY } = window.IOC;
  const STATUS = {
    open: { vi: "Đang mở", en: "Open", chip: "bad" },
    acknowledged: { vi: "Đã tiếp nhận", en: "Acknowledged", chip: "warn" },
    resolved: { vi: "Đã đóng", en: "Resolved", chip: "ok" },
  };
  const RULE_KINDS = {
    violation_increase: { vi: "Vi phạm tăng", en: "Violations up" },
    progress_behind: { vi: "Chậm tiến độ", en: "Behind schedule" },
    sensor_threshold: { vi: "Vượt ngưỡng cảm biến", en: "Sensor threshold" },
    sensor_rate: { vi: "Tăng nhanh bất thường", en: "Sensor rate of rise" },
    source_silent: { vi: "Mất tín hiệu", en: "Source silent" },
  };
  const TRANSITIONS = {
    opened: { vi: "Mở", en: "Opened" },
    escalated: { vi: "Tăng mức", en: "Escalated" },
    updated: { vi: "Cập nhật", en: "Updated" },
    acknowledged: { vi: "Tiếp nhận", en: "Acknowledged" },
    resolved: { vi: "Đóng", en: "Resolved" },
  };
  const RESOLUTIONS = {
    cleared: { vi: "điều kiện đã hết", en: "condition cleared" },
    period_ended: { vi: "hết kỳ đánh giá", en: "period ended" },
    operator: { vi: "do người trực đóng", en: "closed by an operator" },
  };
  const LEVELS = {
    bao_dong_1: { vi: "báo động 1", en: "alert level 1" },
    bao_dong_2: { vi: "báo động 2", en: "alert level 2" },
    bao_dong_3: { vi: "báo động 3", en: "alert level 3" },
    kem: { vi: "kém", en: "poor" }, xau: { vi: "xấu", en: "bad" }, rat_xau: { vi: "rất xấu", en: "very bad" },
    nguy_hai: { vi: "nguy hại", en: "hazardous" }, fire: { vi: "cháy", en: "fire" },
    increase: { vi: "tăng", en: "increase" }, behind: { vi: "chậm", en: "behind" },
    needs_confirmation: { vi: "cần xác nhận", en: "needs confirmation" }, silent: { vi: "im lặng", en: "silent" },
    rate_of_rise: { vi: "tăng nhanh", en: "rate of rise" },
  };
  const SUBJECTS = {
    sensor: { vi: "Cảm biến", en: "Sensor" }, junction: { vi: "Nút giao", en: "Junction" },
    project: { vi: "Dự án", en: "Project" }, source: { vi: "Nguồn dữ liệu", en: "Source" },
  };
  const UNITS = {
    water_level_m: "m", temperature_c: "°C", humidity_pct: "%", pm2_5: "µg/m³", pm10: "µg/m³", co: "µg/m³",
    no2: "µg/m³", so2: "µg/m³", o3: "µg/m³", noise_db: "dBA",
  };
  const MESSAGE_PREFIXES = ["[Đã tiếp nhận] ", "[Đã đóng] ", "[Acknowledged] ", "[Resolved] "];

  const stats = {
    frames: 0, bad_frames: 0, last_bad_frames: [], stale_frames: 0, reconnects: 0, announced: 0,
    beeps: 0, beeps_suppressed: 0, beeps_muted: 0, seen_dropped: 0, stale_loaded: 0,
    stale_details: 0, stream_state: "connecting",
  };
  window.IOC_ALERTS_STATS = stats; // read by the browser tests and useful from the console

  let me = null;
  let canAct = false;
  const alerts = new Map(); // alert_id -> the newest known state of an open or acknowledged alert
  const seen = new Set(); // "alert_id|changed_at" of notices already applied
  const resolved = new Map(); // alert_id -> changed_at (ms) of its resolution, as this page learnt it
  let lastFocus = null;

  // ---- small helpers ----------------------------------------------------------------------------------
  const timeOf = (iso) => Date.parse(iso) || 0; // the API writes +00:00, notices Z: compare instants, not text
  const has = (v) => v !== null && v !== undefined && !Number.isNaN(Number(v));
  const label = (table, key) => table[key] || { vi: key || "—", en: key || "—" };
  const pair = (entry) => `${entry.vi} / ${entry.en}`;

  function chip(entry, cls, attrs = {}) {
    return bilingual("span", entry.vi, entry.en, Object.assign({ class: `chip ${cls}` }, attrs));
  }

  function stripPrefix(text) {
    // A notice of an acknowledged/resolved alert repeats the stored message with a marker; the card shows
    // the status as a chip, so the marker is left out.
    let out = text || "";
    for (const prefix of MESSAGE_PREFIXES) if (out.startsWith(prefix)) out = out.slice(prefix.length);
    return out;
  }

  function subjectText(subject) {
    const [kind, ...rest] = String(subject || "").split(":");
    const what = SUBJECTS[kind];
    return what ? `${what.vi} / ${what.en}: ${rest.join(":")}` : String(subject || "—");
  }

  function metricOf(alert) {
    // The sensor metric: the evidence link to the readings names it (metric=...).
    for (const ref of alert.evidence || []) {
      const match = /[?&]metric=([a-z0-9_]+)/.exec(ref);
      if (match) return match[1];
    }
    return null;
  }

  function plainNumber(value) {
    // As few decimals as the value needs, up to 3 (10.7 -> 10,7; 20 -> 20), like the alert messages.
    return Number(value).toLocaleString("vi-VN", { maximumFractionDigits: 3 });
  }

  function withUnit(value, digits, unit) {
    const text = digits === null ? plainNumber(value) : fmtNumber(value, digits);
    return unit ? `${text} ${unit}` : text;
  }

  function windowText(window) {
    // "30x1d" -> 30 ngày / 30 days; "20s" -> 20 giây / 20 s; a date stays a date.
    if (!window) return null;
    let match = /^(\d+)x1([dh])$/.exec(window);
    if (match) return match[2] === "d" ? `${match[1]} ngày / ${match[1]} days` : `${match[1]} giờ / ${match[1]} h`;
    match = /^(\d+(?:\.\d+)?)s$/.exec(window);
    if (match) {
      const seconds = Number(match[1]);
      return seconds >= 120 ? `${fmtNumber(seconds / 60, 0)} phút / min` : `${fmtNumber(seconds, 0)} giây / s`;
    }
    match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(window);
    if (match) return `${match[3]}/${match[2]}/${match[1]}`;
    return window;
  }

  // ---- the numbers behind an alert ---------------------------------------------------------------------
  function numbersOf(alert) {
    // [{vi, en, text}] for the definition list, and the scale drawn beside it (value, baseline, threshold).
    const rows = [];
    const add = (vi, en, text) => { if (text !== null && text !== undefined) rows.push({ vi, en, text }); };
    const { value, baseline, threshold } = alert;
    const kind = alert.rule_kind;
    if (kind === "violation_increase") {
      add("Số vi phạm kỳ này", "Violations this period", has(value) ? fmtNumber(value, 0) : null);
      add(`Trung bình ${windowText(alert.window) || ""}`.trim(), "Average of the window",
        has(baseline) ? fmtNumber(baseline, 1) : null);
      if (has(threshold)) {
        const pct = has(baseline) && Number(baseline) > 0 ? (Number(threshold) / Number(baseline) - 1) * 100 : null;
        add(pct === null ? "Ngưỡng báo" : `Ngưỡng báo (trung bình +${fmtNumber(pct, 0)}%)`,
          "Alert limit (average + threshold %)", fmtNumber(threshold, 1));
      }
      if (has(value) && has(baseline) && Number(baseline) > 0) {
        const up = (Number(value) - Number(baseline)) / Number(baseline) * 100;
        add("Mức tăng so với trung bình", "Increase on the average", `${up >= 0 ? "+" : ""}${fmtNumber(up, 1)}%`);
      }
    } else if (kind === "sensor_threshold") {
      const unit = UNITS[metricOf(alert)] || "";
      const level = alert.level ? label(LEVELS, alert.level) : null;
      add("Giá trị đo", "Reading", has(value) ? withUnit(value, null, unit) : null);
      add(level ? `Ngưỡng ${level.vi}` : "Ngưỡng", level ? `${level.en} threshold` : "Threshold",
        has(threshold) ? withUnit(threshold, null, unit) : null);
      if (has(value) && has(threshold)) {
        const over = Number(value) - Number(threshold);
        add("Vượt ngưỡng", "Past the threshold by", withUnit(Math.abs(over), null, unit));
      }
      add("Duy trì tối thiểu", "Held for at least", windowText(alert.window));
    } else if (kind === "sensor_rate") {
      const unit = UNITS[metricOf(alert)] || "";
      add("Mức tăng", "Rise", has(value) ? withUnit(value, 1, unit) : null);
      add("Ngưỡng tăng", "Rise threshold", has(threshold) ? withUnit(threshold, 1, unit) : null);
      add("Trong khoảng", "Within", windowText(alert.window));
    } else if (kind === "progress_behind") {
      add("Thực tế", "Actual", has(value) ? `${fmtNumber(value, 1)}%` : null);
      add("Kế hoạch", "Planned", has(baseline) ? `${fmtNumber(baseline, 1)}%` : null);
      if (has(value) && has(baseline)) {
        add("Chậm so với kế hoạch", "Behind the plan", `${fmtNumber(Number(baseline) - Number(value), 1)} điểm / points`);
      }
      add("Ngưỡng", "Threshold", has(threshold) ? `${fmtNumber(threshold, 0)} điểm / points` : null);
      add("Ngày", "Date", windowText(alert.window));
    } else if (kind === "source_silent") {
      add("Không có dữ liệu trong", "Silent for", has(value) ? `${fmtNumber(Number(value) / 60, 0)} phút / min`
        : "chưa từng gửi / never sent");
      add("Ngưỡng", "Threshold", has(threshold) ? `${fmtNumber(Number(threshold) / 60, 0)} phút / min` : null);
    } else {
      add("Giá trị", "Value", has(value) ? fmtNumber(value, 2) : null);
      add("Mốc so sánh", "Baseline", has(baseline) ? fmtNumber(baseline, 2) : null);
      add("Ngưỡng", "Threshold", has(threshold) ? fmtNumber(threshold, 2) : null);
      add("Khoảng thời gian", "Window", windowText(alert.window));
    }
    return rows;
  }

  function numbersBlock(alert) {
    const block = el("div", { class: "numbers" });
    const rows = numbersOf(alert);
    if (!rows.length) return block;
    const list = el("dl");
    for (const row of rows) {
      const term = el("dt", {}, row.vi);
      term.append(el("span", { class: "en" }, ` / ${row.en}`));
      list.append(term, el("dd", { class: "num" }, row.text));
    }
    block.append(list);
    const scale = scaleOf(alert);
    if (scale) block.append(scale);
    return block;
  }

  function scaleOf(alert) {
    // The value against the baseline and the limit on one axis; the numbers themselves are in the list, so
    // the drawing is hidden from screen readers. Silence and progress read better as numbers alone.
    const kind = alert.rule_kind;
    if (!["violation_increase", "sensor_threshold", "sensor_rate"].includes(kind)) return null;
    if (!has(alert.value) || !has(alert.threshold)) return null;
    const values = [alert.value, alert.threshold, alert.baseline].filter(has).map(Number);
    // Counts and rises start at 0; a level (metres above a datum) is drawn around the threshold, so that
    // 11,8 m against 11,5 m does not look like the same point.
    const gap = Math.abs(Number(alert.value) - Number(alert.threshold)) || Math.abs(Number(alert.threshold)) * 0.1 || 1;
    const low = kind === "sensor_threshold" ? Math.min(...values) - 2 * gap : 0;
    const high = (kind === "sensor_threshold" ? Math.max(...values) + gap : Math.max(...values) * 1.15) || 1;
    const width = 260;
    const x = (v) => 4 + (Number(v) - low) / (high - low) * (width - 8);
    const root = svg("svg", { class: "scale", viewBox: `0 0 ${width} 34`, width, height: 34, "aria-hidden": "true" });
    root.append(svg("rect", { class: "track", x: 4, y: 10, width: width - 8, height: 10, rx: 2 }));
    root.append(svg("rect", { class: `bar sev-${alert.severity}`, x: 4, y: 10, width: Math.max(1, x(alert.value) - 4),
      height: 10, rx: 2 }));
    root.append(svg("line", { class: "limit", x1: x(alert.threshold), x2: x(alert.threshold), y1: 4, y2: 26 }));
    root.append(svg("text", { class: "limit-label", x: x(alert.threshold), y: 34, "text-anchor": "middle" }, "ngưỡng"));
    if (has(alert.baseline)) {
      root.append(svg("line", { class: "baseline", x1: x(alert.baseline), x2: x(alert.baseline), y1: 6, y2: 24 }));
    }
    return root;
  }

  // ---- evidence ----------------------------------------------------------------------------------------
  function evidenceBlock(alert, scope = "card") {
    // ``scope`` keeps element ids unique when the same alert is in a card and in the detail view.
    const refs = alert.evidence || [];
    const block = el("div", { class: "evidence" });
    if (!refs.length) return block;
    block.append(bilingual("h4", "Bằng chứng", "Evidence"));
    const list = el("ul");
    refs.forEach((ref, index) => list.append(evidenceItem(alert, String(ref), `${scope}-${index}`)));
    block.append(list);
    return block;
  }

  function evidenceItem(alert, ref, key) {
    const item = el("li");
    if (ref.startsWith("/api/v1/sensors/readings")) {
      const button = bilingual("button", "Xem số liệu đo", "Show the readings", {
        type: "button", class: "secondary readings-toggle", "aria-expanded": "false",
        "aria-controls": `readings-${alert.alert_id}-${key}`,
      });
      const target = el("div", { id: `readings-${alert.alert_id}-${key}`, class: "readings", hidden: "" });
      button.addEventListener("click", () => toggleReadings(alert, ref, button, target));
      const link = el("a", { href: ref, target: "_blank", rel: "noopener" }, "Dữ liệu gốc (JSON)");
      link.append(el("span", { class: "en" }, " / Raw data (JSON)"));
      item.append(button, " ", link, target);
      return item;
    }
    const keyframe = /^evidence\/([0-9a-f]{64})\.(?:jpe?g|png)$/.exec(ref);
    const project = /^project:([^/]+)/.exec(alert.subject || "");
    if (keyframe && project) {
      const src = `/api/v1/projects/${encodeURIComponent(project[1])}/keyframes/${keyframe[1]}`;
      const link = el("a", { href: src, target: "_blank", rel: "noopener", class: "thumb-link" });
      const image = el("img", { src, alt: `Ảnh hiện trường / Site image ${keyframe[1].slice(0, 8)}`, class: "thumb",
        loading: "lazy" });
      image.addEventListener("error", () => {
        link.replaceWith(el("span", { class: "note" }, `Không xem được ảnh / Image unavailable (${keyframe[1].slice(0, 8)}…)`));
      });
      link.append(image);
      item.append(link);
      return item;
    }
    if (keyframe) {
      // Violation images are sealed plate evidence: only the audited police search opens them.
      item.append(el("span", { class: "note" },
        `Ảnh vi phạm ${keyframe[1].slice(0, 12)}… (xem qua tra cứu của cảnh sát) / Violation image (opened through the police search)`));
      return item;
    }
    const href = linkOf(ref);
    if (href) {
      item.append(el("a", { href, target: "_blank", rel: "noopener noreferrer" }, ref));
      return item;
    }
    item.append(el("code", {}, ref));
    return item;
  }

  function linkOf(ref) {
    // An evidence reference as a link: a full http(s) address (shown as such), or a path on this site. A path
    // must stay on this site: "//host/..." and "/\host/..." name another host to the browser, and so does
    // "/<tab>/host" once the URL parser drops the tab; so the path is resolved and its origin checked.
    if (/^https?:\/\//i.test(ref)) return ref;
    if (!/^\/(?![/\\])/.test(ref)) return null;
    try {
      const url = new URL(ref, window.location.origin);
      return url.origin === window.location.origin ? `${url.pathname}${url.search}${url.hash}` : null;
    } catch (_) {
      return null;
    }
  }

  async function toggleReadings(alert, ref, button, target) {
    const open = button.getAttribute("aria-expanded") === "true";
    button.setAttribute("aria-expanded", String(!open));
    target.hidden = open;
    if (open || target.dataset.loaded) return;
    target.replaceChildren(el("p", { class: "note" }, "Đang tải… / Loading…"));
    try {
      const body = await api(ref);
      const items = (body && body.items) || [];
      target.dataset.loaded = "1";
      target.replaceChildren(readingsChart(alert, items));
    } catch (error) {
      target.replaceChildren(el("p", { class: "error", role: "alert" }, error.message));
    }
  }

  function readingsChart(alert, items) {
    const points = items.filter((r) => has(r.value) && r.time).map((r) => ({ t: Date.parse(r.time), v: Number(r.value) }))
      .sort((a, b) => a.t - b.t);
    const box = el("div");
    const unit = UNITS[metricOf(alert)] || "";
    if (!points.length) {
      box.append(el("p", { class: "note" }, "Không có số đo trong khoảng này. / No readings in this window."));
      return box;
    }
    const values = points.map((p) => p.v).concat(has(alert.threshold) ? [Number(alert.threshold)] : []);
    const margin = (Math.max(...values) - Math.min(...values)) * 0.15 || Math.abs(values[0]) * 0.05 || 1;
    const lo = Math.min(...values) - margin;
    const hi = Math.max(...values) + margin;
    const span = hi - lo;
    const [w, h, pad] = [320, 100, 8];
    const t0 = points[0].t;
    const t1 = points[points.length - 1].t;
    const x = (t) => pad + (t1 === t0 ? (w - 2 * pad) : (t - t0) / (t1 - t0) * (w - 2 * pad));
    const y = (v) => h - pad - (v - lo) / span * (h - 2 * pad);
    const root = svg("svg", { class: "readings-chart", viewBox: `0 0 ${w} ${h}`, width: w, height: h, "aria-hidden": "true" });
    if (has(alert.threshold)) {
      const ty = y(Number(alert.threshold));
      root.append(svg("line", { class: "limit", x1: pad, x2: w - pad, y1: ty, y2: ty }));
      root.append(svg("text", { class: "limit-label", x: pad + 2, y: ty - 3 },
        `ngưỡng / threshold ${withUnit(alert.threshold, null, unit)}`));
    }
    root.append(svg("polyline", { class: "series", points: points.map((p) => `${x(p.t)},${y(p.v)}`).join(" ") }));
    for (const p of points) root.append(svg("circle", { class: "reading", cx: x(p.t), cy: y(p.v), r: 2.5 }));
    const last = points[points.length - 1];
    const highest = withUnit(Math.max(...points.map((p) => p.v)), null, unit);
    const latest = withUnit(last.v, null, unit);
    const summary = `${points.length} số đo trong 1 giờ trước cảnh báo, cao nhất ${highest}, mới nhất ${latest} lúc `
      + `${fmtTime(new Date(last.t))} / ${points.length} readings in the hour before the alert, highest ${highest}`;
    box.append(root, el("p", { class: "readings-summary" }, summary));
    return box;
  }

  // ---- one alert card ----------------------------------------------------------------------------------
  function card(alert) {
    const severity = label(SEVERITY, alert.severity);
    const status = label(STATUS, alert.status);
    const titleId = `alert-title-${alert.alert_id}`;
    const node = el("article", {
      class: `alert-card sev-${alert.severity}`, "data-alert-id": alert.alert_id, "data-status": alert.status,
      "data-severity": alert.severity, "aria-labelledby": titleId,
    });
    const top = el("div", { class: "card-top" });
    top.append(chip(severity, `${severity.chip || "muted"} severity`),
      chip(status, `${status.chip || "muted"} status`));
    if (alert.level && LEVELS[alert.level]) top.append(el("span", { class: "level" }, pair(LEVELS[alert.level])));
    top.append(el("span", { class: "kind" }, pair(label(RULE_KINDS, alert.rule_kind))));
    node.append(top);
    const title = el("h3", { id: titleId, class: "message-vi" }, stripPrefix(alert.message_vi));
    node.append(title, el("p", { class: "message-en en", lang: "en" }, stripPrefix(alert.message_en)));
    const meta = el("p", { class: "meta" });
    meta.append(el("span", { class: "subject" }, subjectText(alert.subject)), " · ",
      el("span", { class: "opened" }, `Mở lúc / Opened ${fmtTime(alert.opened_at)}`));
    if (alert.changed_at && timeOf(alert.changed_at) !== timeOf(alert.opened_at)) {
      meta.append(" · ", el("span", { class: "changed" }, `Cập nhật / Changed ${fmtTime(alert.changed_at)}`));
    }
    node.append(meta, numbersBlock(alert), evidenceBlock(alert));
    if (alert.status === "acknowledged" && (alert.acknowledged_by || alert.acknowledge_comment)) {
      const who = alert.acknowledged_by ? `${alert.acknowledged_by}, ${fmtTime(alert.acknowledged_at)}` : "";
      node.append(el("p", { class: "ack" },
        `Đã tiếp nhận / Acknowledged: ${who}${alert.acknowledge_comment ? ` — “${alert.acknowledge_comment}”` : ""}`));
    }
    const actions = el("div", { class: "actions" });
    if (canAct && alert.status === "open") {
      actions.append(actionButton("acknowledge", "Tiếp nhận", "Acknowledge", alert));
    }
    if (canAct && alert.status !== "resolved") {
      actions.append(actionButton("resolve", "Đóng cảnh báo", "Resolve", alert));
    }
    const details = bilingual("button", "Chi tiết", "Details", {
      type: "button", class: "secondary", "data-action": "details", "aria-describedby": titleId,
    });
    details.addEventListener("click", () => openDetail(alert.alert_id, details));
    actions.append(details);
    node.append(actions);
    return node;
  }

  function actionButton(what, vi, en, alert) {
    const button = bilingual("button", vi, en, {
      type: "button", "data-action": what, "aria-describedby": `alert-title-${alert.alert_id}`,
      class: what === "resolve" ? "secondary" : "",
    });
    button.addEventListener("click", () => openAction(alert.alert_id, what, button));
    return button;
  }

  // ---- the feed ----------------------------------------------------------------------------------------
  function ordered() {
    // Unacknowledged first, then the most severe, then the newest.
    const rank = (a) => (label(SEVERITY, a.severity).rank || 0);
    return [...alerts.values()].sort((a, b) => (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1)
      || rank(b) - rank(a) || timeOf(b.opened_at) - timeOf(a.opened_at));
  }

  function renderFeed(fresh = null) {
    const feed = $("feed");
    const focused = document.activeElement;
    const focusCard = focused && focused.closest ? focused.closest(".alert-card") : null;
    const focusId = focusCard ? focusCard.dataset.alertId : null;
    const focusAction = focused && focused.dataset ? focused.dataset.action : null;
    const existing = new Map([...feed.children].map((n) => [n.dataset.alertId, n]));
    const cards = ordered().map((alert) => {
      const old = existing.get(alert.alert_id);
      if (old && old.dataset.revision === String(alert.revision)) return old;
      const node = card(alert);
      node.dataset.revision = String(alert.revision);
      return node;
    });
    feed.replaceChildren(...cards);
    if (fresh) {
      const node = feed.querySelector(`[data-alert-id="${CSS.escape(fresh)}"]`);
      if (node) node.classList.add("fresh");
    }
    if (focusId) restoreFocus(focusId, focusAction);
    $("feed-empty").hidden = alerts.size > 0;
    const open = [...alerts.values()].filter((a) => a.status === "open").length;
    $("live-count").textContent = alerts.size ? `(${open}/${alerts.size})` : "";
  }

  function restoreFocus(alertId, action) {
    const node = $("feed").querySelector(`[data-alert-id="${CSS.escape(alertId)}"]`);
    if (!node || node.contains(document.activeElement)) return;
    const target = (action && node.querySelector(`[data-action="${action}"]`))
      || node.querySelector(".actions button");
    if (target) target.focus();
  }

  let revisions = 0;

  function keep(alert) {
    // Store an alert's newest state; the revision tells the feed which cards to redraw.
    revisions += 1;
    alerts.set(alert.alert_id, Object.assign(alert, { revision: revisions }));
  }

  function rememberSeen(key) {
    seen.add(key);
    if (seen.size > MAX_SEEN) {
      seen.delete(seen.values().next().value); // drop oldest
      stats.seen_dropped += 1;
    }
  }

  function rememberResolved(alertId, changedAt) {
    // Resolved is final (a new episode is a new alert id): any state of this alert not newer than its
    // resolution is stale, whether it comes from a slow load of the open alerts or a late notice.
    const at = timeOf(changedAt);
    if ((resolved.get(alertId) ?? -Infinity) >= at) return;
    resolved.delete(alertId); // re-inserted: the Map keeps insertion order, so the oldest is dropped first
    resolved.set(alertId, at);
    if (resolved.size > MAX_RESOLVED) resolved.delete(resolved.keys().next().value);
  }

  function resolvedSince(alertId, changedAt) {
    // True when this page knows the alert was resolved at or after ``changedAt``.
    return resolved.has(alertId) && resolved.get(alertId) >= timeOf(changedAt);
  }

  function applyNotice(notice, { fromStream }) {
    // Merge one AlertNotice (stream or an action's answer); returns true when it changed the feed.
    const key = `${notice.alert_id}|${notice.changed_at}`;
    if (seen.has(key)) return false;
    rememberSeen(key);
    const known = alerts.get(notice.alert_id);
    if ((known && timeOf(known.changed_at) > timeOf(notice.changed_at))
      || (notice.status !== "resolved" && resolvedSince(notice.alert_id, notice.changed_at))) {
      stats.stale_frames += 1;
      return false;
    }
    const merged = Object.assign({}, known || {}, notice, {
      message_vi: stripPrefix(notice.message_vi), message_en: stripPrefix(notice.message_en), received_at: Date.now(),
    });
    if (merged.status === "resolved") {
      rememberResolved(notice.alert_id, notice.changed_at);
      alerts.delete(notice.alert_id);
    } else keep(merged);
    renderFeed(notice.transition === "opened" || notice.transition === "escalated" ? notice.alert_id : null);
    announce(merged, notice.transition);
    if (fromStream && (notice.transition === "opened" || notice.transition === "escalated")) alarm(notice.severity);
    if (notice.transition === "acknowledged" && merged.status === "acknowledged") refreshOne(notice.alert_id);
    return true;
  }

  async function refreshOne(alertId) {
    // A notice does not say who acknowledged; the alert itself does.
    try {
      const full = await api(`/api/v1/alerts/${encodeURIComponent(alertId)}`);
      const known = alerts.get(alertId);
      if (full.status === "resolved") rememberResolved(alertId, full.changed_at);
      if (!known || timeOf(full.changed_at) < timeOf(known.changed_at) || full.status === "resolved") {
        if (known && full.status === "resolved") { alerts.delete(alertId); renderFeed(); }
        return;
      }
      keep(Object.assign({}, known, full, { received_at: Date.now() }));
      renderFeed();
    } catch (_) { /* the card keeps what the notice said */ }
  }

  const ANNOUNCED = {
    opened: { vi: "Cảnh báo mới", en: "New alert" },
    escalated: { vi: "Cảnh báo tăng mức", en: "Alert escalated" },
    updated: { vi: "Cảnh báo cập nhật", en: "Alert updated" },
    acknowledged: { vi: "Đã tiếp nhận cảnh báo", en: "Alert acknowledged" },
    resolved: { vi: "Đã đóng cảnh báo", en: "Alert resolved" },
  };

  function announce(alert, transition) {
    const severity = label(SEVERITY, alert.severity);
    const what = label(ANNOUNCED, transition);
    const line = `${what.vi} (${severity.vi.toLowerCase()}): ${alert.message_vi} / `
      + `${what.en} (${severity.en.toLowerCase()}): ${alert.message_en}`;
    const log = $("announcer");
    log.append(el("p", {}, line));
    while (log.children.length > MAX_ANNOUNCEMENTS) log.firstElementChild.remove();
    stats.announced += 1;
  }

  async function loadOpen() {
    // The alerts open or acknowledged now; notices that arrived while loading and are newer win, alerts
    // resolved while the stream was down go away, and an alert resolved while this load was in flight (its
    // answer read before the resolution) stays away. Loads may overlap (start, each reconnect, a 409): each
    // merge only moves an alert forward in time, so the order their answers arrive in does not matter.
    const started = Date.now();
    try {
      const [open, acknowledged] = await Promise.all(["open", "acknowledged"].map(
        (status) => api(`/api/v1/alerts?status=${status}&limit=${OPEN_PAGE}`)));
      const loaded = new Map();
      for (const item of [...open.items, ...acknowledged.items]) loaded.set(item.alert_id, item);
      for (const [id, known] of alerts) {
        if (!loaded.has(id) && known.received_at < started) alerts.delete(id);
      }
      for (const [id, item] of loaded) {
        const known = alerts.get(id);
        if (resolvedSince(id, item.changed_at)) {
          stats.stale_loaded += 1;
          continue;
        }
        if (!known || timeOf(known.changed_at) <= timeOf(item.changed_at)) {
          keep(Object.assign({}, known || {}, item, { received_at: started }));
        }
      }
      const more = open.next_cursor || acknowledged.next_cursor;
      showError($("feed-more"), more
        ? `Chỉ hiện ${OPEN_PAGE} cảnh báo mới nhất mỗi trạng thái; xem thêm ở tab Lịch sử. / Only the newest ${OPEN_PAGE} per status are shown; see History.`
        : "");
      showError($("feed-error"), "");
      renderFeed();
      $("feed").dataset.loaded = "1";
    } catch (error) {
      showError($("feed-error"), `Không tải được cảnh báo đang mở. / Could not load the open alerts. ${error.message}`);
    }
  }

  // ---- the stream --------------------------------------------------------------------------------------
  const STREAM_STATES = {
    connecting: { vi: "Đang kết nối…", en: "Connecting…", chip: "muted" },
    connected: { vi: "Đã kết nối", en: "Connected", chip: "ok" },
    reconnecting: { vi: "Mất kết nối, đang kết nối lại…", en: "Disconnected, reconnecting…", chip: "warn" },
  };
  const stream = { source: null, attempt: 0, timer: null };

  function setStreamState(state) {
    stats.stream_state = state;
    const node = $("stream-state");
    const entry = STREAM_STATES[state];
    node.dataset.state = state;
    node.className = `chip ${entry.chip}`;
    node.replaceChildren(entry.vi, " ", el("span", { class: "en" }, `/ ${entry.en}`));
  }

  function connect() {
    clearTimeout(stream.timer);
    if (stream.source) stream.source.close();
    const source = new EventSource(STREAM_URL, { withCredentials: true });
    stream.source = source;
    source.addEventListener("open", () => {
      stream.attempt = 0;
      setStreamState("connected");
      loadOpen(); // what happened while disconnected is in the database, not in the stream
    });
    source.addEventListener("alert", (event) => onFrame(event.data));
    source.addEventListener("error", () => {
      if (source !== stream.source) return;
      setStreamState("reconnecting");
      // CONNECTING: the browser retries by itself (the server's retry hint); CLOSED (an HTTP error such as a
      // restart's 503): it gave up, so retry here with backoff up to a ceiling.
      if (source.readyState === EventSource.CLOSED) scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    const base = Math.min(RECONNECT.ceiling_ms, RECONNECT.first_ms * RECONNECT.factor ** stream.attempt);
    const delay = base * (1 - RECONNECT.jitter + Math.random() * 2 * RECONNECT.jitter);
    stream.attempt += 1;
    stats.reconnects += 1;
    clearTimeout(stream.timer);
    stream.timer = setTimeout(async () => {
      // A refused stream may be an expired session: IOC.api's 401 handling then shows the sign-in form.
      try { await api("/api/v1/auth/me"); } catch (_) { /* down: try the stream anyway */ }
      connect();
    }, delay);
  }

  function onFrame(data) {
    stats.frames += 1;
    let notice = null;
    try {
      notice = JSON.parse(data);
    } catch (_) { notice = null; }
    const valid = notice && typeof notice.alert_id === "string" && STATUS[notice.status]
      && typeof notice.changed_at === "string" && typeof notice.message_vi === "string";
    if (!valid) {
      stats.bad_frames += 1;
      stats.last_bad_frames.push(String(data).slice(0, 500));
      if (stats.last_bad_frames.length > MAX_BAD_FRAMES) stats.last_bad_frames.shift();
      console.warn("alerts: an unreadable stream frame was skipped (kept in IOC_ALERTS_STATS.last_bad_frames)");
      return;
    }
    applyNotice(notice, { fromStream: true });
  }

  // ---- sound -------------------------------------------------------------------------------------------
  const sound = { on: false, context: null, lastAt: 0 };

  function readSoundSetting() {
    try { return window.localStorage.getItem(SOUND_KEY) === "on"; } catch (_) { return false; }
  }

  function audioContext() {
    // Created (or resumed) inside a click or key press: browsers only start audio after a user gesture.
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    if (!sound.context) sound.context = new Context();
    if (sound.context.state === "suspended") sound.context.resume().catch(() => {});
    return sound.context;
  }

  function setSound(on) {
    sound.on = on;
    try { window.localStorage.setItem(SOUND_KEY, on ? "on" : "off"); } catch (_) { /* private mode: not kept */ }
    const button = $("sound-toggle");
    button.setAttribute("aria-pressed", String(on));
    $("sound-state").replaceChildren(on ? "bật " : "tắt ", el("span", { class: "en" }, on ? "/ on" : "/ off"));
  }

  function tone(context, frequency, start, length) {
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.3, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + length);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(start);
    oscillator.stop(start + length + 0.02);
  }

  function alarm(severity) {
    // Critical: three high beeps; warning: two lower ones; notices stay silent.
    if (severity !== "critical" && severity !== "warning") return;
    if (!sound.on) { stats.beeps_muted += 1; return; }
    const now = Date.now();
    if (now - sound.lastAt < BEEP_GAP_MS) { stats.beeps_suppressed += 1; return; }
    sound.lastAt = now;
    const context = audioContext();
    if (!context) return;
    const [frequency, count] = severity === "critical" ? [988, 3] : [660, 2];
    for (let i = 0; i < count; i += 1) tone(context, frequency, context.currentTime + i * 0.25, 0.18);
    stats.beeps += 1;
    stats.last_beep = severity;
  }

  // ---- acknowledge / resolve ---------------------------------------------------------------------------
  const action = { alertId: null, what: null, opener: null };

  function openAction(alertId, what, opener) {
    const alert = alerts.get(alertId);
    if (!alert) return;
    Object.assign(action, { alertId, what, opener });
    const resolve = what === "resolve";
    $("action-title").replaceChildren(...bilingual("span", resolve ? "Đóng cảnh báo" : "Tiếp nhận cảnh báo",
      resolve ? "Resolve the alert" : "Acknowledge the alert").childNodes);
    $("action-alert").textContent = alert.message_vi;
    $("action-comment-label").replaceChildren(resolve ? "Ghi chú (bắt buộc) " : "Ghi chú (không bắt buộc) ",
      el("span", { class: "en" }, resolve ? "/ Comment (required)" : "/ Comment (optional)"));
    const comment = $("action-comment");
    comment.value = "";
    comment.required = resolve;
    comment.removeAttribute("aria-invalid");
    $("action-submit").replaceChildren(...bilingual("span", resolve ? "Đóng cảnh báo" : "Tiếp nhận",
      resolve ? "Resolve" : "Acknowledge").childNodes);
    $("action-submit").disabled = false;
    showError($("action-error"), "");
    $("action-dialog").showModal();
    comment.focus();
  }

  async function submitAction(event) {
    event.preventDefault();
    const comment = $("action-comment").value.trim();
    if (action.what === "resolve" && !comment) {
      showError($("action-error"), "Vui lòng nhập ghi chú khi đóng cảnh báo. / Please give a comment to resolve.");
      $("action-comment").setAttribute("aria-invalid", "true");
      $("action-comment").focus();
      return;
    }
    $("action-submit").disabled = true;
    try {
      const notice = await api(`/api/v1/alerts/${encodeURIComponent(action.alertId)}/${action.what}`, {
        json: { comment, by: me.username },
        statusMessages: { 409: "Cảnh báo đã thay đổi trạng thái. / The alert's status changed meanwhile." },
      });
      $("action-dialog").close();
      applyNotice(notice, { fromStream: false });
    } catch (error) {
      $("action-submit").disabled = false;
      showError($("action-error"), error.message);
      if (error.status === 409) loadOpen();
    }
  }

  function dialogClosed() {
    // Focus goes back where it came from: the button, or the redrawn card's next action (acknowledged: resolve);
    // a resolved alert's card is gone, so to the first card's actions.
    const { opener, alertId, what } = action;
    Object.assign(action, { alertId: null, what: null, opener: null });
    if (opener && opener.isConnected) { opener.focus(); return; }
    const node = alertId && $("feed").querySelector(`[data-alert-id="${CSS.escape(alertId)}"]`);
    if (node) { restoreFocus(alertId, what); return; }
    ($("feed").querySelector(".alert-card .actions button") || $("tab-live")).focus();
  }

  // ---- history -----------------------------------------------------------------------------------------
  const history = { cursor: null, query: null, shown: 0, loaded: false, generation: 0 };
  const SKIP_PAGES = 10; // pages fetched at most per click when the severity filter empties them

  function historyQuery() {
    const params = new URLSearchParams();
    const from = $("filter-from").value;
    const to = $("filter-to").value;
    if (from && to && from > to) throw new Error("“Từ ngày” phải trước “Đến ngày”. / “From” must be before “To”.");
    for (const [key, id] of [["status", "filter-status"], ["rule_kind", "filter-kind"], ["severity", "filter-severity"]]) {
      if ($(id).value) params.set(key, $(id).value);
    }
    const subject = $("filter-subject").value.trim();
    if (subject) params.set("subject", subject);
    if (from) params.set("since", `${from}T00:00:00${PROVINCE_OFFSET}`);
    if (to) {
      const next = new Date(`${to}T00:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      params.set("until", `${next.toISOString().slice(0, 10)}T00:00:00${PROVINCE_OFFSET}`);
    }
    // The table's data-page-size (tests) can shrink the page; the API's keyset cursor does the rest.
    params.set("limit", String(Number($("history-table").dataset.pageSize) || HISTORY_PAGE));
    return params;
  }

  async function searchHistory(append) {
    // A new search (append false) or the next page ("Xem thêm"). Rows the severity filter leaves out are
    // skipped here too, so that filter holds whether or not the API knows it; a page that it empties is
    // followed by the next one (up to SKIP_PAGES), so "Xem thêm" never adds nothing while more exists.
    showError($("history-error"), "");
    if (!append) {
      try {
        history.query = historyQuery();
      } catch (error) {
        showError($("history-error"), error.message);
        return;
      }
      history.cursor = null;
      history.shown = 0;
      $("history-table").querySelector("tbody").replaceChildren();
    }
    history.generation += 1;
    const generation = history.generation;
    const wanted = history.query.get("severity");
    const body = $("history-table").querySelector("tbody");
    $("history-more").disabled = true;
    try {
      let added = 0;
      for (let fetched = 0; fetched < SKIP_PAGES && (fetched === 0 || (added === 0 && history.cursor)); fetched += 1) {
        const params = new URLSearchParams(history.query);
        if (history.cursor) params.set("cursor", history.cursor);
        const page = await api(`/api/v1/alerts?${params}`);
        if (generation !== history.generation) return; // a newer search replaced this one
        const items = page.items.filter((item) => !wanted || item.severity === wanted);
        for (const item of items) body.append(historyRow(item));
        added += items.length;
        history.cursor = page.next_cursor;
        rememberSubjects(page.items);
      }
      history.shown += added;
      history.loaded = true;
      const more = Boolean(history.cursor);
      $("history-more").hidden = !more;
      $("history-summary").textContent = history.shown
        ? `Hiển thị ${history.shown} cảnh báo${more ? " (còn nữa)" : ""} / Showing ${history.shown} alerts${more ? " (more available)" : ""}`
        : "Không có cảnh báo nào khớp bộ lọc. / No alert matches the filters.";
    } catch (error) {
      if (generation === history.generation) showError($("history-error"), error.message);
    } finally {
      $("history-more").disabled = false;
    }
  }

  function historyRow(item) {
    const row = el("tr", { "data-alert-id": item.alert_id, "data-status": item.status });
    const severity = label(SEVERITY, item.severity);
    const status = label(STATUS, item.status);
    const messageId = `history-message-${item.alert_id}`;
    const message = el("td", { id: messageId }, stripPrefix(item.message_vi));
    message.append(el("br"), el("span", { class: "en", lang: "en" }, stripPrefix(item.message_en)));
    const statusCell = el("td");
    statusCell.append(chip(status, status.chip));
    if (item.resolution && RESOLUTIONS[item.resolution]) {
      statusCell.append(el("br"), el("span", { class: "note" }, pair(RESOLUTIONS[item.resolution])));
    }
    const button = bilingual("button", "Chi tiết", "Details", { type: "button", class: "secondary",
      "aria-describedby": messageId });
    button.addEventListener("click", () => openDetail(item.alert_id, button));
    const open = el("td");
    open.append(button);
    const severityCell = el("td");
    severityCell.append(chip(severity, severity.chip));
    row.append(el("td", { class: "time" }, fmtTime(item.opened_at)), severityCell, message,
      el("td", {}, subjectText(item.subject)), statusCell, open);
    return row;
  }

  function rememberSubjects(items) {
    const list = $("subject-list");
    const known = new Set([...list.children].map((o) => o.value));
    for (const item of items) {
      if (known.has(item.subject) || known.size >= 200) continue;
      known.add(item.subject);
      list.append(el("option", { value: item.subject }));
    }
  }

  // ---- the detail view ---------------------------------------------------------------------------------
  let detailOpener = null;
  let detailLoad = 0; // numbers each opening of the detail view; an answer for an older one is dropped

  async function openDetail(alertId, opener) {
    detailOpener = opener;
    const dialog = $("detail-dialog");
    const body = $("detail-body");
    const rows = $("detail-transitions").querySelector("tbody");
    detailLoad += 1;
    const load = detailLoad;
    dialog.dataset.alertId = alertId; // set before the fetch: the answer must still be for what is shown
    delete body.dataset.loadedFor;
    body.replaceChildren(el("p", { class: "note" }, "Đang tải… / Loading…"));
    rows.replaceChildren();
    showError($("detail-error"), "");
    dialog.showModal();
    $("detail-close").focus();
    // Open A, close, open B: A's slow answer must not replace B's (nor fill a closed dialog).
    const current = () => {
      if (load === detailLoad && dialog.open && dialog.dataset.alertId === alertId) return true;
      stats.stale_details += 1;
      return false;
    };
    try {
      const alert = await api(`/api/v1/alerts/${encodeURIComponent(alertId)}`);
      if (!current()) return;
      body.replaceChildren(detailSummary(alert), numbersBlock(alert), evidenceBlock(alert, "detail"));
      for (const t of alert.transitions || []) rows.append(transitionRow(t));
      body.dataset.loadedFor = alertId; // the browser tests wait on it
    } catch (error) {
      if (!current()) return;
      body.replaceChildren();
      showError($("detail-error"), error.message);
    }
  }

  function detailSummary(alert) {
    const box = el("div", { class: "detail-summary" });
    const severity = label(SEVERITY, alert.severity);
    const status = label(STATUS, alert.status);
    const top = el("div", { class: "card-top" });
    top.append(chip(severity, severity.chip), chip(status, status.chip),
      el("span", { class: "kind" }, pair(label(RULE_KINDS, alert.rule_kind))));
    box.append(top, el("p", { class: "message-vi strong" }, stripPrefix(alert.message_vi)),
      el("p", { class: "en", lang: "en" }, stripPrefix(alert.message_en)));
    const facts = el("dl", { class: "facts" });
    const fact = (vi, en, text) => {
      if (!text) return;
      const term = el("dt", {}, vi);
      term.append(el("span", { class: "en" }, ` / ${en}`));
      facts.append(term, el("dd", {}, text));
    };
    fact("Đối tượng", "Subject", subjectText(alert.subject));
    fact("Quy tắc", "Rule", alert.rule_id);
    fact("Mở lúc", "Opened", fmtTime(alert.opened_at));
    if (alert.acknowledged_at) {
      fact("Tiếp nhận", "Acknowledged", `${alert.acknowledged_by || "—"}, ${fmtTime(alert.acknowledged_at)}`);
      fact("Ghi chú tiếp nhận", "Acknowledge comment", alert.acknowledge_comment);
    }
    if (alert.resolved_at) {
      const how = RESOLUTIONS[alert.resolution] ? ` (${pair(RESOLUTIONS[alert.resolution])})` : "";
      fact("Đóng", "Resolved", `${alert.resolved_by || "—"}, ${fmtTime(alert.resolved_at)}${how}`);
      fact("Ghi chú khi đóng", "Resolve comment", alert.resolve_comment);
    }
    box.append(facts);
    return box;
  }

  function transitionRow(t) {
    const row = el("tr", { "data-transition": t.transition });
    const status = label(STATUS, t.status);
    row.append(el("td", { class: "time" }, fmtTime(t.at)), el("td", {}, pair(label(TRANSITIONS, t.transition))),
      el("td", {}, pair(status)), el("td", { class: "by" }, t.by || "hệ thống / system"),
      el("td", { class: "comment" }, t.comment || ""));
    return row;
  }

  // ---- tabs --------------------------------------------------------------------------------------------
  const TABS = ["live", "history"];

  function selectTab(name, focus) {
    for (const tab of TABS) {
      const selected = tab === name;
      const button = $(`tab-${tab}`);
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      $(`panel-${tab}`).hidden = !selected;
    }
    if (focus) $(`tab-${name}`).focus();
    if (window.location.hash !== `#${name}`) window.history.replaceState(null, "", `#${name}`);
    if (name === "history" && !history.loaded) searchHistory(false);
  }

  function tabKeys(event) {
    const index = TABS.findIndex((t) => `tab-${t}` === event.currentTarget.id);
    const moves = { ArrowRight: 1, ArrowLeft: -1 };
    if (event.key in moves) {
      selectTab(TABS[(index + moves[event.key] + TABS.length) % TABS.length], true);
      event.preventDefault();
    } else if (event.key === "Home" || event.key === "End") {
      selectTab(event.key === "Home" ? TABS[0] : TABS[TABS.length - 1], true);
      event.preventDefault();
    }
  }

  // ---- start -------------------------------------------------------------------------------------------
  function fillOptions(select, table) {
    for (const [value, entry] of Object.entries(table)) select.append(el("option", { value }, pair(entry)));
  }

  function wire() {
    fillOptions($("filter-kind"), RULE_KINDS);
    fillOptions($("filter-severity"), SEVERITY);
    for (const tab of TABS) {
      $(`tab-${tab}`).addEventListener("click", () => selectTab(tab, false));
      $(`tab-${tab}`).addEventListener("keydown", tabKeys);
    }
    $("sound-toggle").addEventListener("click", () => {
      const on = !sound.on;
      setSound(on);
      if (on) audioContext(); // the click is the gesture that lets the page play
    });
    setSound(readSoundSetting());
    // A remembered "on" still needs a gesture after a reload before the browser plays anything.
    const unlock = () => { if (sound.on) audioContext(); };
    document.addEventListener("pointerdown", unlock, { once: true });
    document.addEventListener("keydown", unlock, { once: true });
    $("action-form").addEventListener("submit", submitAction);
    $("action-cancel").addEventListener("click", () => $("action-dialog").close());
    $("action-dialog").addEventListener("close", dialogClosed);
    $("detail-close").addEventListener("click", () => $("detail-dialog").close());
    $("detail-dialog").addEventListener("close", () => {
      if (detailOpener && detailOpener.isConnected) detailOpener.focus();
      detailOpener = null;
    });
    $("history-form").addEventListener("submit", (event) => { event.preventDefault(); searchHistory(false); });
    $("history-form").addEventListener("reset", () => setTimeout(() => searchHistory(false), 0));
    $("history-more").addEventListener("click", () => searchHistory(true));
  }

  window.IOC.shell({
    page: "alerts",
    onReady: async (user) => {
      me = user;
      canAct = (user.roles || []).some((role) => ACT_ROLES.includes(role));
      wire();
      selectTab(window.location.hash === "#history" ? "history" : "live", false);
      setStreamState("connecting");
      loadOpen(); // shown even while the stream cannot connect; loaded again each time it (re)connects
      connect();
    },
  });
})();
