// The agent health page: one row per agent (its own state, uptime, spool backlog, last batch, events refused)
// followed by its cameras and sensors (state, uptime, fps, frames dropped, last event). Sortable by any column
// (agents are sorted, and the sources under each agent by the same column); states are colour + symbol + text;
// figures from a health report older than 2 minutes carry a stale mark. Every server value goes in as text.
// The periodic refresh changes only what changed (rows keyed by agent and source, the header buttons kept, the
// summary live region written only when its text changes), so keyboard focus and screen readers are left alone.
"use strict";

(() => {
  const { $, el, api, fmtTime, fmtNumber, reconcile } = IOC;
  const STATES = IOC.SOURCE_STATES;
  const KINDS = { camera: "Camera / Camera", sensor: "Cảm biến / Sensor" };
  const time = (iso) => (iso ? Date.parse(iso) : null);
  const COLUMNS = [
    { key: "name", vi: "Agent / thiết bị", en: "Agent / device", value: (r) => r.name || r.id || r.agent_id },
    { key: "state", vi: "Trạng thái", en: "State", value: (r) => (STATES[r.state] || STATES.unknown).rank },
    { key: "uptime", vi: "Thời gian chạy", en: "Uptime", value: (r) => r.uptime_s, num: true },
    { key: "fps", vi: "Khung hình/giây", en: "FPS", value: (r) => r.fps, num: true },
    { key: "dropped", vi: "Khung hình bỏ", en: "Frames dropped", value: (r) => r.frames_dropped, num: true },
    { key: "spool", vi: "Hàng đợi gửi", en: "Spool backlog", value: (r) => (r.delivery ? r.delivery.spool_events : null), num: true },
    { key: "event", vi: "Sự kiện cuối", en: "Last event", value: (r) => time(r.last_event_time) },
    { key: "batch", vi: "Lô gửi cuối", en: "Last batch", value: (r) => time(r.last_batch_at) },
    { key: "refused", vi: "Sự kiện bị từ chối", en: "Events refused", value: (r) => r.events_refused, num: true },
  ];
  const REFRESH_MS = 30000;
  let agents = [];
  let sort = { key: "name", dir: 1 };

  function chip(row) {
    const s = STATES[row.state] || STATES.unknown;
    const cell = el("td");
    const node = el("span", { class: `chip ${s.chip}` }, `${s.symbol} ${s.vi}`);
    node.append(el("span", { class: "en" }, ` / ${s.en}`));
    cell.append(node, el("span", { class: "detail" }, `${row.detail_vi} / ${row.detail_en}`));
    return cell;
  }

  function uptime(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    return d ? `${d} ngày ${h} giờ / ${d} d ${h} h` : `${h} giờ ${m} phút / ${h} h ${m} min`;
  }

  function figure(text, stale, num = true) {
    const cell = el("td", num ? { class: "num" } : {}, text);
    if (stale && text !== "—") {
      cell.classList.add("stale");
      cell.append(" ", el("span", { class: "stale-mark", title: "Cũ / Stale", "aria-hidden": "true" }, "cũ"),
        el("span", { class: "visually-hidden" }, " (cũ / stale)"));
    }
    return cell;
  }

  function spool(delivery) {
    if (!delivery) return "—";
    let text = `${fmtNumber(delivery.spool_events)} sự kiện / events`;
    if (delivery.dropped_events) text += `; bỏ / dropped ${fmtNumber(delivery.dropped_events)}`;
    return text;
  }

  function agentRow(agent) {
    const row = el("tr", { class: "agent-row", "data-agent": agent.agent_id });
    const name = el("th", { scope: "rowgroup" }, agent.agent_id);
    if (agent.revoked) name.append(el("span", { class: "kind" }, " (đã thu hồi / revoked)"));
    row.append(
      name,
      chip(agent),
      figure(uptime(agent.uptime_s), agent.stale),
      figure("—", false),
      figure("—", false),
      figure(spool(agent.delivery), agent.stale),
      el("td", {}, fmtTime(agent.last_event_time)),
      el("td", {}, fmtTime(agent.last_batch_at)),
      figure(fmtNumber(agent.events_refused), false),
    );
    return row;
  }

  function sourceRow(agent, source) {
    const row = el("tr", { class: "source-row", "data-source": `${agent.agent_id}/${source.id}` });
    const name = el("td", {}, source.name || source.id);
    name.append(el("span", { class: "kind" }, ` ${KINDS[source.kind] || source.kind} · ${source.id}`));
    if (!source.registered) name.append(el("span", { class: "kind" }, " (chưa đăng ký / not registered)"));
    row.append(
      name,
      chip(source),
      figure(uptime(source.uptime_s), source.stale),
      figure(source.fps === null ? "—" : fmtNumber(source.fps, 1), source.stale),
      figure(source.frames_dropped === null ? "—" : fmtNumber(source.frames_dropped), source.stale),
      figure("—", false),
      el("td", {}, fmtTime(source.last_event_time)),
      el("td", {}, "—"),
      figure("—", false),
    );
    return row;
  }

  function compare(column) {
    return (a, b) => {
      const x = column.value(a);
      const y = column.value(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1; // no value last, whatever the direction
      if (y === null || y === undefined) return -1;
      return (typeof x === "string" ? x.localeCompare(y, "vi") : x - y) * sort.dir;
    };
  }

  function buildHead() {
    // Once: a sort button per column; sorting changes aria-sort only, so the pressed button keeps its focus.
    const head = $("health-table").querySelector("thead tr");
    head.replaceChildren();
    for (const column of COLUMNS) {
      const th = el("th", { scope: "col", "data-column": column.key });
      const button = el("button", { type: "button", "data-sort": column.key }, column.vi);
      button.append(el("span", { class: "en" }, ` / ${column.en}`));
      button.addEventListener("click", () => {
        sort = { key: column.key, dir: sort.key === column.key ? -sort.dir : 1 };
        render();
      });
      th.append(button);
      head.append(th);
    }
  }

  function markSort() {
    for (const th of $("health-table").querySelectorAll("thead th")) {
      const wanted = th.dataset.column === sort.key ? (sort.dir > 0 ? "ascending" : "descending") : null;
      if (wanted === th.getAttribute("aria-sort")) continue;
      if (wanted) th.setAttribute("aria-sort", wanted); else th.removeAttribute("aria-sort");
    }
  }

  const rowKey = (row) => (row.dataset.agent ? `agent:${row.dataset.agent}` : row.dataset.source || "");
  const bodyKey = (body) => body.dataset.agent || "";

  function render() {
    markSort();
    const table = $("health-table");
    const column = COLUMNS.find((c) => c.key === sort.key);
    const sorted = [...agents].sort(compare(column));
    const olds = [...table.tBodies];
    const byAgent = new Map(olds.map((body) => [bodyKey(body), body]));
    let bodies;
    if (!sorted.length) {
      const body = el("tbody");
      const row = el("tr");
      row.append(el("td", { colspan: String(COLUMNS.length) }, "Không có agent nào trong khu vực của bạn. / No agent in your area."));
      body.append(row);
      bodies = [body];
    } else {
      bodies = sorted.map((agent) => {
        const body = byAgent.get(agent.agent_id) || el("tbody", { class: "agent-group", "data-agent": agent.agent_id });
        const rows = [agentRow(agent), ...[...agent.sources].sort(compare(column)).map((s) => sourceRow(agent, s))];
        reconcile(body, [...body.rows], rows, rowKey, () => body.firstChild);
        return body;
      });
    }
    reconcile(table, olds, bodies, bodyKey, () => table.tBodies[0] || null);
    const counts = { live: 0, stalled: 0, down: 0, unknown: 0 };
    for (const a of agents) for (const s of a.sources) counts[s.state] = (counts[s.state] || 0) + 1;
    const summary = `${agents.length} agent; thiết bị / devices: ` +
      Object.entries(counts).map(([k, n]) => `${STATES[k].vi} / ${STATES[k].en} ${n}`).join(", ");
    if ($("health-summary").textContent !== summary) $("health-summary").textContent = summary; // a live region
  }

  async function refresh() {
    try {
      agents = await api("/api/v1/health/agents");
      IOC.showError($("health-error"), "");
    } catch (error) {
      IOC.showError($("health-error"), error.message);
      return;
    }
    render();
    $("health-updated").textContent = `Cập nhật / Updated: ${fmtTime(new Date())}`;
  }

  IOC.shell({ page: "health", onReady: async () => {
    buildHead();
    $("health-refresh").addEventListener("click", refresh);
    await refresh();
    setInterval(refresh, REFRESH_MS);
  } });
})();
