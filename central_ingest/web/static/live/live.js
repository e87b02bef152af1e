// The live view (/live): a grid of 1, 4, 9 or 16 camera tiles, each streaming the agent's analysed frames
// through central's live proxy and drawing the detections over them (common/live_tile.js); a tile opens full
// screen with the camera's counts of the last hour beside it. The layout lives in the URL
// (?grid=4&cameras=agent/cam,...) and in localStorage. Plain JavaScript, no build step; values from the server
// go into the page as text only.
"use strict";

(() => {
  const { $, el, svg, api, showError, fmtNumber } = window.IOC;
  const { LiveTile, stateInfo, lineTotals } = window.IOC_LIVE;
  const GRIDS = [1, 4, 9, 16];
  const DEFAULT_GRID = 4;
  const STORAGE_KEY = "ioc.live.layout";
  const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\/[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
  const CHART_EVERY_MS = 60000; // the counts API gets new 5-min rows at most this often
  const BUCKET_MS = 5 * 60000;
  const CLASS_NAMES = {
    car: "ô tô / car", motorcycle: "xe máy / motorcycle", motorbike: "xe máy / motorbike", bicycle: "xe đạp / bicycle",
    bus: "xe buýt / bus", truck: "xe tải / truck", person: "người / person",
  };
  const CLASS_ORDER = ["motorcycle", "motorbike", "car", "bus", "truck", "bicycle", "person"];
  const NO_AREA = "Chưa gán khu vực / No area";

  let cameras = []; // [{key, agent_id, camera_id, name, area_path, live}]
  let layout = { grid: DEFAULT_GRID, cameras: [] };
  const tiles = []; // [{node, select, view, canvas, status, name, counts, live: LiveTile|null, key}]
  let focus = null; // {tile, timer, fullscreen}

  const cameraOf = (key) => cameras.find((c) => c.key === key) || null;
  const cameraLabel = (c) => (c.name && c.name !== c.camera_id ? `${c.name} (${c.camera_id})` : c.camera_id);
  const className = (cls) => CLASS_NAMES[cls] || cls || "—";

  // ---- layout: URL, localStorage ------------------------------------------------------------------
  function cleanLayout(grid, keys) {
    const n = GRIDS.includes(Number(grid)) ? Number(grid) : DEFAULT_GRID;
    const list = (Array.isArray(keys) ? keys : []).slice(0, 16).map((k) => (KEY_PATTERN.test(String(k)) ? String(k) : ""));
    return { grid: n, cameras: list };
  }

  function layoutFromUrl() {
    const params = new URLSearchParams(location.search);
    if (!params.has("grid") && !params.has("cameras")) return null;
    const keys = (params.get("cameras") || "").split(",").map((k) => k.trim());
    const grid = params.get("grid") || (keys.length <= 1 ? 1 : GRIDS.find((g) => g >= keys.length) || 16);
    return cleanLayout(grid, keys);
  }

  function layoutFromStorage() {
    try {
      const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
      return stored ? cleanLayout(stored.grid, stored.cameras) : null;
    } catch (_) { return null; }
  }

  function saveLayout() {
    const keys = tiles.map((t) => t.key || "");
    while (keys.length && !keys[keys.length - 1]) keys.pop();
    layout = { grid: layout.grid, cameras: keys };
    const params = new URLSearchParams({ grid: String(layout.grid) });
    if (keys.length) params.set("cameras", keys.join(","));
    // The slash of agent/camera stays readable in the address.
    history.replaceState(null, "", `${location.pathname}?${params.toString().replace(/%2F/g, "/").replace(/%2C/g, ",")}`);
    try { localStorage.setItem(STORAGE_KEY, JSON.stringify(layout)); } catch (_) { /* private mode: URL only */ }
  }

  // ---- the grid -----------------------------------------------------------------------------------
  function cameraPicker(index, selected) {
    const select = el("select", { id: `tile-${index}-camera`, class: "tile-camera" });
    select.append(el("option", { value: "" }, "— Chọn camera / Pick a camera —"));
    const groups = new Map();
    for (const c of cameras) {
      const area = c.area_path || NO_AREA;
      if (!groups.has(area)) groups.set(area, el("optgroup", { label: area }));
      const text = c.live ? cameraLabel(c) : `${cameraLabel(c)} — chưa có luồng / no stream`;
      groups.get(area).append(el("option", { value: c.key }, text));
    }
    for (const area of [...groups.keys()].sort((a, b) => (a === NO_AREA) - (b === NO_AREA) || a.localeCompare(b, "vi"))) {
      select.append(groups.get(area));
    }
    if (selected && !cameraOf(selected)) {
      // From a shared link: kept so the tile says why it shows nothing (not in your area, no such camera).
      select.append(el("option", { value: selected }, `${selected} (ngoài danh sách / not in your list)`));
    }
    select.value = selected || "";
    return select;
  }

  function buildTile(index, key) {
    const node = el("article", { class: "tile", "data-index": String(index), "data-state": "idle" });
    const head = el("div", { class: "tile-head" });
    const label = el("label", { for: `tile-${index}-camera` }, `Ô ${index + 1}`);
    label.append(el("span", { class: "en" }, ` / Tile ${index + 1}`));
    const select = cameraPicker(index, key);
    const status = el("span", { class: "chip muted tile-status" });
    head.append(label, select, status);
    const view = el("button", { type: "button", class: "tile-view" });
    const canvas = el("canvas", { width: "640", height: "360", "aria-hidden": "true" });
    const placeholder = el("span", { class: "tile-placeholder" }, "Chưa chọn camera / No camera chosen");
    view.append(canvas, placeholder);
    const name = el("p", { class: "tile-name" });
    const counts = el("p", { class: "tile-counts" });
    node.append(head, view, name, counts);
    const tile = { index, node, select, view, canvas, placeholder, status, name, counts, live: null, key: "" };
    select.addEventListener("change", () => { watch(tile, select.value); saveLayout(); });
    view.addEventListener("click", () => { if (tile.key) openFocus(tile); });
    watch(tile, key);
    return tile;
  }

  function showState(tile, state, vi, en) {
    const { chip } = stateInfo(state);
    tile.node.dataset.state = state;
    tile.status.className = `chip ${chip} tile-status`;
    tile.status.replaceChildren(vi, el("span", { class: "en" }, ` / ${en}`));
    tile.placeholder.hidden = state === "live" || Number(tile.node.dataset.frames || 0) > 0;
    if (!tile.placeholder.hidden && state !== "idle") tile.placeholder.textContent = `${vi} / ${en}`;
  }

  function countsText(header) {
    return lineTotals(header).map((l) => `${l.name}: ${l.inLabel} ${l.inTotal} · ${l.outLabel} ${l.outTotal}`).join("; ");
  }

  function watch(tile, key) {
    if (tile.live) tile.live.close();
    tile.live = null;
    tile.key = key || "";
    tile.node.dataset.camera = tile.key;
    tile.node.dataset.frames = "0";
    tile.node.dataset.boxes = "0";
    tile.counts.textContent = "";
    tile.canvas.getContext("2d").clearRect(0, 0, tile.canvas.width, tile.canvas.height);
    const camera = cameraOf(tile.key);
    tile.name.textContent = camera ? `${cameraLabel(camera)} · ${camera.area_path || NO_AREA}` : tile.key;
    const what = camera ? cameraLabel(camera) : tile.key;
    tile.view.setAttribute("aria-label", tile.key
      ? `Xem toàn màn hình: ${what} / Full screen: ${what}` : `Ô ${tile.index + 1} chưa chọn camera / Tile ${tile.index + 1}: no camera`);
    tile.view.disabled = !tile.key;
    tile.placeholder.textContent = "Chưa chọn camera / No camera chosen";
    if (!tile.key) {
      const idle = stateInfo("idle");
      showState(tile, "idle", idle.vi, idle.en);
      return;
    }
    const [agentId, cameraId] = tile.key.split("/");
    let lastCounts = "";
    tile.live = new LiveTile({
      agentId, cameraId, canvas: tile.canvas,
      onState: (state, vi, en) => showState(tile, state, vi, en),
      onFrame: (header, drawn) => {
        tile.node.dataset.frames = String(tile.live.stats.frames_drawn);
        tile.node.dataset.boxes = String(drawn.boxes);
        tile.placeholder.hidden = true;
        const text = countsText(header);
        if (text !== lastCounts) { tile.counts.textContent = text; lastCounts = text; }
        if (focus && focus.tile === tile) showLiveTotals(header);
      },
    }).start();
  }

  function setGrid(grid) {
    layout.grid = grid;
    const grid$ = $("live-grid");
    grid$.dataset.grid = String(grid);
    for (const button of document.querySelectorAll("[data-grid]")) {
      if (button.tagName === "BUTTON") button.setAttribute("aria-pressed", String(Number(button.dataset.grid) === grid));
    }
    while (tiles.length > grid) {
      const tile = tiles.pop();
      if (tile.live) tile.live.close();
      tile.node.remove();
    }
    while (tiles.length < grid) {
      const tile = buildTile(tiles.length, layout.cameras[tiles.length] || "");
      tiles.push(tile);
      grid$.append(tile.node);
    }
  }

  // ---- full screen with the counts chart ---------------------------------------------------------
  function openFocus(tile) {
    if (focus) closeFocus();
    const camera = cameraOf(tile.key);
    $("focus-title").textContent = camera ? `${cameraLabel(camera)} · ${camera.area_path || NO_AREA}` : tile.key;
    const section = $("focus");
    section.hidden = false;
    document.body.classList.add("focus-open");
    $("focus-view").append(tile.canvas); // the tile keeps drawing on its canvas, now shown large
    focus = { tile, timer: setInterval(() => loadChart(tile), CHART_EVERY_MS), fullscreen: false };
    showLiveTotals(tile.live && tile.live.header);
    loadChart(tile);
    $("focus-close").focus();
    if (document.fullscreenEnabled && section.requestFullscreen) {
      section.requestFullscreen().then(() => { if (focus) focus.fullscreen = true; }).catch(() => {
        /* not allowed here: the full-window layout stays */
      });
    }
  }

  function closeFocus() {
    if (!focus) return;
    const { tile, timer, fullscreen } = focus;
    focus = null;
    clearInterval(timer);
    tile.view.prepend(tile.canvas);
    $("focus").hidden = true;
    document.body.classList.remove("focus-open");
    if (fullscreen && document.fullscreenElement) document.exitFullscreen().catch(() => {});
    tile.view.focus();
  }

  function showLiveTotals(header) {
    const tbody = $("live-totals").querySelector("tbody");
    const rows = [];
    for (const line of lineTotals(header)) {
      for (const [direction, total, byClass] of [[line.inLabel, line.inTotal, line.in], [line.outLabel, line.outTotal, line.out]]) {
        const detail = Object.entries(byClass).map(([cls, n]) => `${className(cls)}: ${fmtNumber(n)}`).join(", ");
        const row = el("tr");
        row.append(el("td", {}, line.name), el("td", {}, direction), el("td", { class: "num" }, fmtNumber(total)),
          el("td", {}, detail || "—"));
        rows.push(row);
      }
    }
    if (!rows.length) {
      const row = el("tr");
      row.append(el("td", { colspan: "4" }, "Chưa có số đếm trực tiếp / No live counts yet"));
      rows.push(row);
    }
    tbody.replaceChildren(...rows);
  }

  async function loadChart(tile) {
    const camera = tile.key.split("/");
    const end = Date.now();
    const start = Math.floor((end - 3600000) / BUCKET_MS) * BUCKET_MS;
    const params = new URLSearchParams({
      agent_id: camera[0], source_id: camera[1], start: new Date(start).toISOString(), end: new Date(end).toISOString(),
      bucket: "5m", group_by: "vehicle_class", timezone: "Asia/Ho_Chi_Minh",
    });
    let rows;
    try {
      rows = await api(`/api/v1/counts?${params}`);
    } catch (error) {
      if (!focus || focus.tile !== tile) return;
      showError($("chart-error"), error.message || String(error));
      $("chart").replaceChildren();
      $("chart-table").querySelector("tbody").replaceChildren();
      return;
    }
    if (!focus || focus.tile !== tile) return;
    showError($("chart-error"), "");
    drawChart(rows, start, end);
  }

  function drawChart(rows, start, end) {
    const buckets = [];
    for (let t = start; t < end; t += BUCKET_MS) buckets.push(t);
    const byBucket = new Map(buckets.map((t) => [t, new Map()]));
    const classes = new Set();
    for (const row of Array.isArray(rows) ? rows : []) {
      const t = Date.parse(row.bucket);
      if (!row.vehicle_class || !Number(row.count) || !byBucket.has(t)) continue;
      classes.add(row.vehicle_class);
      const counts = byBucket.get(t);
      counts.set(row.vehicle_class, (counts.get(row.vehicle_class) || 0) + Number(row.count));
    }
    const order = [...classes].sort((a, b) => (CLASS_ORDER.indexOf(a) + 99) % 99 - (CLASS_ORDER.indexOf(b) + 99) % 99 || a.localeCompare(b));
    const width = 420, height = 220, left = 36, right = 8, top = 10, bottom = 30;
    const peak = Math.max(1, ...buckets.map((t) => [...byBucket.get(t).values()].reduce((a, b) => a + b, 0)));
    const slot = (width - left - right) / buckets.length;
    const y = (v) => top + (1 - v / peak) * (height - top - bottom);
    const total = [...byBucket.values()].reduce((sum, m) => sum + [...m.values()].reduce((a, b) => a + b, 0), 0);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", id: "chart-svg",
      "aria-label": `Lưu lượng theo 5 phút trong 1 giờ qua, tổng ${total} lượt / Counts per 5 min over the last hour, ${total} in all` });
    for (const v of [0, peak / 2, peak]) {
      root.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
      root.append(svg("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end" }, fmtNumber(v)));
    }
    const clock = new Intl.DateTimeFormat("vi-VN", { timeZone: "Asia/Ho_Chi_Minh", hour: "2-digit", minute: "2-digit", hour12: false });
    const tbody = [];
    buckets.forEach((t, i) => {
      let base = 0;
      for (const cls of order) {
        const n = byBucket.get(t).get(cls) || 0;
        if (!n) continue;
        const rect = svg("rect", { x: left + slot * i + 1, y: y(base + n), width: Math.max(1, slot - 2),
          height: y(base) - y(base + n), class: `bar c${order.indexOf(cls) % 6}` });
        rect.append(svg("title", {}, `${clock.format(t)} · ${className(cls)}: ${n}`));
        root.append(rect);
        base += n;
        const row = el("tr");
        row.append(el("td", {}, clock.format(t)), el("td", {}, className(cls)), el("td", { class: "num" }, fmtNumber(n)));
        tbody.push(row);
      }
      if (i % 3 === 0) root.append(svg("text", { x: left + slot * i, y: height - 10 }, clock.format(t)));
    });
    $("chart").replaceChildren(root);
    $("chart-legend").replaceChildren(...order.map((cls, i) => {
      const item = el("li");
      item.append(el("span", { class: `key c${i % 6}` }), className(cls));
      return item;
    }));
    if (!tbody.length) {
      const row = el("tr");
      row.append(el("td", { colspan: "3" }, "Không có lượt đếm trong 1 giờ qua / No counts in the last hour"));
      tbody.push(row);
    }
    $("chart-table").querySelector("tbody").replaceChildren(...tbody);
  }

  // ---- start --------------------------------------------------------------------------------------
  async function start() {
    let listed = false;
    try {
      const list = await api("/api/v1/live/cameras");
      cameras = (Array.isArray(list) ? list : []).map((c) => ({ ...c, key: `${c.agent_id}/${c.camera_id}` }))
        .filter((c) => KEY_PATTERN.test(c.key));
      listed = true;
    } catch (error) {
      showError($("live-error"), error.message || String(error));
      cameras = [];
    }
    // "No camera in your area" only when the list says so; a failed list call is not an empty area.
    $("live-empty").hidden = !listed || cameras.length > 0;
    layout = layoutFromUrl() || layoutFromStorage() || { grid: DEFAULT_GRID, cameras: [] };
    if (!layout.cameras.some((key) => key)) {
      // No camera chosen (first visit, or ?grid=N alone): fill the grid with the first cameras that have a stream.
      layout = { grid: layout.grid, cameras: cameras.filter((c) => c.live).slice(0, layout.grid).map((c) => c.key) };
    }
    setGrid(layout.grid);
    saveLayout();
    for (const button of document.querySelectorAll("button[data-grid]")) {
      button.addEventListener("click", () => { setGrid(Number(button.dataset.grid)); saveLayout(); });
    }
    $("focus-close").addEventListener("click", closeFocus);
    document.addEventListener("keydown", (event) => { if (event.key === "Escape" && focus) closeFocus(); });
    document.addEventListener("fullscreenchange", () => {
      // Esc in real full screen leaves it (the browser's own key): return to the grid as well.
      if (!document.fullscreenElement && focus && focus.fullscreen) closeFocus();
    });
    window.addEventListener("pagehide", () => { for (const tile of tiles) if (tile.live) tile.live.close(); });
  }

  window.IOC.shell({ page: "live", onReady: start });
})();
