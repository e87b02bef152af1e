// The police vehicle-pass search page: log in (password + TOTP), search with a stated reason, and show
// the answer as a timeline, a route map and a table. Plain browser JavaScript, no build step, no CDN.
// Every value from the server is put in the page as text (textContent / SVG text), never as HTML.
"use strict";

(() => {
  const VN_OFFSET = "+07:00"; // Vietnam keeps UTC+7 all year; the form's times are Vietnam time.
  const CASE_NUMBER = /^[\p{L}\p{N}_][\p{L}\p{N}_./:# -]{0,63}$/u;
  const MIN_NOTE = 10;
  const MIN_KNOWN_RUN = 3;
  const DIRECTIONS = { in: "Vào / In", out: "Ra / Out" };
  const timeFormat = new Intl.DateTimeFormat("vi-VN", {
    timeZone: "Asia/Ho_Chi_Minh", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  const shortTime = new Intl.DateTimeFormat("vi-VN", {
    timeZone: "Asia/Ho_Chi_Minh", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
  });

  const { $, el, svg, csrfToken, showError, detailOf } = window.IOC;
  let evidenceObserver = null;

  // ---- small helpers ----------------------------------------------------------------------------
  function formatTime(iso) { return timeFormat.format(new Date(iso)) + " (UTC+7)"; }

  function vietnamInputValue(date) {
    // A datetime-local value that shows `date` in Vietnam time, whatever the browser's zone.
    return new Date(date.getTime() + 7 * 3600 * 1000).toISOString().slice(0, 16);
  }

  const POLICE_STATUS = {
    403: "Tài khoản này không có quyền tra cứu (cần vai trò cảnh sát). / This account may not search (police role needed).",
    500: "Lỗi máy chủ: tra cứu KHÔNG được thực hiện và không có kết quả nào được trả về. / Server error: the search was not performed.",
  };
  const messageFor = (status, detail) => window.IOC.messageFor(status, detail, POLICE_STATUS);

  // ---- session ----------------------------------------------------------------------------------
  function showLoggedIn(me) {
    $("who-name").textContent = `Cán bộ / Officer: ${me.username} (${(me.roles || []).join(", ")})`;
    $("who").hidden = false;
    $("login-section").hidden = true;
    $("search-section").hidden = false;
    loadCameras();
  }

  function showLoggedOut() {
    $("who").hidden = true;
    $("login-section").hidden = false;
    $("search-section").hidden = true;
    $("results-section").hidden = true;
  }

  async function login(event) {
    event.preventDefault();
    const error = $("login-error");
    showError(error, "");
    const result = await window.IOC.signIn(
      $("login-username").value.trim(), $("login-password").value, $("login-totp").value.trim(), POLICE_STATUS);
    if (!result.ok) { showError(error, result.message); return; }
    $("login-password").value = "";
    $("login-totp").value = "";
    showLoggedIn(result);
  }

  async function logout() {
    await window.IOC.signOut();
    showLoggedOut();
  }

  async function restoreSession() {
    let me = null;
    try {
      me = await window.IOC.currentUser();
    } catch (error) {
      // The server is unreachable or unwell (not "no session"): say so above the sign-in form.
      showLoggedOut();
      window.IOC.showError($("login-error"), error.message || String(error));
      return;
    }
    if (me) showLoggedIn(me); else showLoggedOut();
  }

  async function loadCameras() {
    const select = $("cameras");
    const response = await fetch("/api/v1/sites", { credentials: "same-origin" });
    if (!response.ok) return; // the search still works on all cameras
    const sites = await response.json();
    select.replaceChildren();
    for (const site of sites.filter((s) => s.kind === "camera")) {
      const option = el("option", { value: JSON.stringify([site.agent_id, site.id]) }, `${site.name} (${site.id})`);
      select.append(option);
    }
  }

  // ---- the search form --------------------------------------------------------------------------
  function plateMode(text) {
    const value = text.trim().toUpperCase();
    if (!value) return { kind: null };
    if (!/[?*]/.test(value)) return { kind: "plate", value };
    const compact = value.replace(/[-. ]/g, "");
    const longest = Math.max(...compact.split(/[?*]+/).map((run) => run.length));
    return { kind: "pattern", value, ok: longest >= MIN_KNOWN_RUN };
  }

  function formProblems() {
    const problems = [];
    const mode = plateMode($("plate").value);
    if (!mode.kind) problems.push("biển số / plate");
    else if (mode.kind === "pattern" && !mode.ok) problems.push("ít nhất 3 ký tự liền nhau đã biết / 3 known characters in a row");
    if (!CASE_NUMBER.test($("case-number").value.trim())) problems.push("số hồ sơ / case number");
    if ($("note").value.trim().length < MIN_NOTE) problems.push("ghi chú ≥ 10 ký tự / note ≥ 10 characters");
    if (!$("since").value || !$("until").value) problems.push("khoảng thời gian / time range");
    return problems;
  }

  function refreshForm() {
    const mode = plateMode($("plate").value);
    $("plate-mode").textContent = mode.kind === "plate"
      ? "Tìm chính xác / Exact search"
      : mode.kind === "pattern" ? "Tìm một phần biển số / Partial-plate search" : "";
    const problems = formProblems();
    $("search-button").disabled = problems.length > 0;
    $("search-needs").textContent = problems.length
      ? `Còn thiếu / Still needed: ${problems.join("; ")}`
      : "Sẵn sàng tra cứu; lý do sẽ được ghi vào nhật ký. / Ready; the reason will be logged.";
  }

  function searchBody() {
    const mode = plateMode($("plate").value);
    const cameras = Array.from($("cameras").selectedOptions).map((o) => JSON.parse(o.value)[1]);
    const body = {
      since: `${$("since").value}:00${VN_OFFSET}`,
      until: `${$("until").value}:00${VN_OFFSET}`,
      source_ids: cameras,
      reason: { case_number: $("case-number").value.trim(), note: $("note").value.trim() },
    };
    body[mode.kind] = mode.value;
    return body;
  }

  async function search(event) {
    event.preventDefault();
    if (formProblems().length) return;
    const error = $("search-error");
    showError(error, "");
    $("search-button").disabled = true;
    try {
      const response = await fetch("/api/v1/plates/search", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify(searchBody()),
      });
      if (!response.ok) {
        showError(error, messageFor(response.status, await detailOf(response)));
        $("results-section").hidden = true;
        if (response.status === 401) showLoggedOut();
        return;
      }
      showResults(await response.json());
    } catch (failure) {
      showError(error, `Không kết nối được máy chủ. / Cannot reach the server. (${failure})`);
    } finally {
      refreshForm();
    }
  }

  // ---- results ----------------------------------------------------------------------------------
  function showResults(answer) {
    $("results-section").hidden = false;
    const count = answer.records.length;
    const summary = $("results-summary");
    summary.replaceChildren(el("span", {}, `Mã tra cứu / Search id: ${answer.search_id} · ${count} lượt qua / passes`));
    if (answer.truncated) {
      summary.append(el("span", { class: "warning" },
        " · Kết quả bị cắt bớt: thu hẹp khoảng thời gian. / Truncated: narrow the time range."));
    }
    $("results-empty").hidden = count > 0;
    $("results-body").hidden = count === 0;
    if (evidenceObserver) evidenceObserver.disconnect();
    if (count === 0) return;
    const cameras = new Map(answer.cameras.map((c) => [c.key, c]));
    drawTimeline($("timeline"), answer.timeline, answer.cameras);
    drawMap($("map"), answer.timeline, answer.cameras);
    const unknown = answer.cameras.filter((c) => c.lat === null || c.lon === null);
    $("map-unknown").hidden = unknown.length === 0;
    $("map-unknown").textContent = `Camera chưa có vị trí trên bản đồ / Cameras without a map position: ${
      unknown.map((c) => c.key).join(", ")}`;
    fillTable(answer, cameras);
  }

  function cameraLabel(camera) { return camera && camera.name ? camera.name : camera.source_id; }

  function drawTimeline(container, timeline, cameras) {
    const rowHeight = 34, left = 220, right = 60, top = 16, axisHeight = 40;
    const width = Math.max(700, container.clientWidth || 900);
    const height = top + rowHeight * cameras.length + axisHeight;
    const times = timeline.map((t) => Date.parse(t.time));
    let t0 = Math.min(...times), t1 = Math.max(...times);
    const pad = Math.max((t1 - t0) * 0.05, 60 * 1000);
    t0 -= pad; t1 += pad;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "Dòng thời gian các lượt qua / Timeline of passes", id: "timeline-svg" });
    const rowOf = new Map(cameras.map((c, i) => [c.key, i]));
    cameras.forEach((camera, i) => {
      const y = top + rowHeight * i + rowHeight / 2;
      root.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" }));
      root.append(svg("text", { x: 8, y: y + 4, class: "camera-label" }, cameraLabel(camera)));
    });
    const axisY = top + rowHeight * cameras.length + 6;
    root.append(svg("line", { x1: left, x2: width - right, y1: axisY, y2: axisY, class: "axis" }));
    const ticks = 5;
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + ((t1 - t0) * i) / ticks;
      root.append(svg("line", { x1: x(t), x2: x(t), y1: axisY, y2: axisY + 5, class: "axis" }));
      root.append(svg("text", { x: x(t), y: axisY + 18, "text-anchor": "middle" }, shortTime.format(new Date(t))));
    }
    root.append(svg("text", { x: width - right, y: axisY + 34, "text-anchor": "end" }, "Giờ Việt Nam / Vietnam time"));
    for (const item of timeline) {
      const y = top + rowHeight * rowOf.get(item.camera_key) + rowHeight / 2;
      const mark = svg("circle", { cx: x(Date.parse(item.time)), cy: y, r: 6, class: "pass-mark",
        "data-step": item.step });
      mark.append(svg("title", {}, `#${item.step} ${formatTime(item.time)} ${item.camera_key}`));
      root.append(mark);
    }
    container.replaceChildren(root);
  }

  function drawMap(container, timeline, cameras) {
    const width = Math.max(600, container.clientWidth || 900), height = 420, margin = 60;
    const placed = cameras.filter((c) => c.lat !== null && c.lon !== null);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "Bản đồ lộ trình / Route map", id: "map-svg" });
    root.append(svg("rect", { x: 0, y: 0, width, height, fill: "#eef2ee" }));
    if (placed.length === 0) {
      root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" },
        "Chưa có camera nào có vị trí / No camera has a map position"));
      container.replaceChildren(root);
      return;
    }
    // Equirectangular projection around the mean latitude: exact enough over a province.
    const meanLat = placed.reduce((s, c) => s + c.lat, 0) / placed.length;
    const k = Math.cos((meanLat * Math.PI) / 180);
    const px = placed.map((c) => c.lon * k), py = placed.map((c) => c.lat);
    const minX = Math.min(...px), maxX = Math.max(...px), minY = Math.min(...py), maxY = Math.max(...py);
    const span = Math.max(maxX - minX, maxY - minY, 1e-4);
    const scale = Math.min((width - 2 * margin) / span, (height - 2 * margin) / span);
    const offX = (width - (maxX - minX) * scale) / 2, offY = (height - (maxY - minY) * scale) / 2;
    const position = new Map(placed.map((c) => [c.key, [
      offX + (c.lon * k - minX) * scale, height - (offY + (c.lat - minY) * scale)]]));
    const steps = timeline.filter((t) => position.has(t.camera_key));
    if (steps.length > 1) {
      const points = steps.map((t) => position.get(t.camera_key).join(",")).join(" ");
      root.append(svg("polyline", { points, class: "path-line" }));
    }
    for (const camera of placed) {
      const [cx, cy] = position.get(camera.key);
      const dot = svg("circle", { cx, cy, r: 7, class: "camera-dot", "data-camera": camera.key });
      dot.append(svg("title", {}, `${cameraLabel(camera)} (${camera.lat}, ${camera.lon})`));
      root.append(dot);
      root.append(svg("text", { x: cx + 10, y: cy - 10, class: "camera-label" }, cameraLabel(camera)));
    }
    // Numbered marks in time order; repeated visits to one camera fan out below it.
    const visits = new Map();
    for (const item of steps) {
      const [cx, cy] = position.get(item.camera_key);
      const n = visits.get(item.camera_key) || 0;
      visits.set(item.camera_key, n + 1);
      const mx = cx + 14 * (n % 8) - 7 * Math.min(n, 7) + 12, my = cy + 16 + 16 * Math.floor(n / 8);
      const group = svg("g", { class: "step", "data-step": item.step });
      group.append(svg("circle", { cx: mx, cy: my, r: 8, class: "step-mark" }));
      group.append(svg("text", { x: mx, y: my, class: "step-label" }, String(item.step)));
      group.append(svg("title", {}, `#${item.step} ${formatTime(item.time)}`));
      root.append(group);
    }
    container.replaceChildren(root);
  }

  function fillTable(answer, cameras) {
    const body = $("passes").querySelector("tbody");
    body.replaceChildren();
    const stepOf = new Map(answer.timeline.map((t) => [t.event_id, t.step]));
    evidenceObserver = new IntersectionObserver(loadVisibleEvidence, { rootMargin: "200px" });
    for (const record of answer.records) {
      const row = el("tr", { "data-event-id": record.event_id });
      const camera = cameras.get(record.camera_key);
      row.append(
        el("td", { class: "num" }, String(stepOf.get(record.event_id) ?? "")),
        el("td", {}, formatTime(record.time)),
        el("td", {}, camera && camera.name ? `${camera.name} (${record.source_id})` : record.source_id),
        el("td", { class: "plate" }, record.plate),
        el("td", { class: "num" }, `${Math.round(record.plate_confidence * 100)}%`),
        el("td", {}, DIRECTIONS[record.direction] || "—"),
        el("td", {}, window.IOC.vehicleClass(record.vehicle_class)),
        el("td", {}, [record.vehicle_colour, record.plate_colour && `biển / plate: ${record.plate_colour}`]
          .filter(Boolean).join(", ") || "—"),
      );
      const cell = el("td");
      const viewable = record.evidence.filter((e) => e.url);
      if (viewable.length === 0) cell.textContent = "Không có ảnh / No image";
      for (const evidence of viewable.slice(0, 3)) {
        const img = el("img", { class: "thumb", alt: `Ảnh / Image ${record.plate}`, "data-src": evidence.url });
        img.addEventListener("click", () => openViewer(img, record));
        cell.append(img);
        evidenceObserver.observe(img);
      }
      row.append(cell);
      body.append(row);
    }
  }

  async function loadVisibleEvidence(entries, observer) {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const img = entry.target;
      observer.unobserve(img);
      await loadEvidence(img);
    }
  }

  async function loadEvidence(img) {
    // Fetched once into a blob: the viewer reuses it, so one look is one audited view.
    const response = await fetch(img.dataset.src, { credentials: "same-origin" });
    if (!response.ok) {
      const detail = await detailOf(response);
      img.hidden = true;
      img.after(response.status === 404 ? notUploaded(img, detail) : unavailable(response.status, detail));
      return;
    }
    img.src = URL.createObjectURL(await response.blob());
    img.hidden = false;
    img.dataset.loaded = "1";
  }

  function unavailable(status, detail) {
    const note = el("span", { class: "error" }, `Không xem được ảnh (${status}) / Image unavailable`);
    note.title = detail;
    return note;
  }

  function notUploaded(img, detail) {
    // The agent keeps this image at the edge (its upload policy): ask for it; it arrives after the agent's
    // next batch (central cannot call the agent), then "Xem lại / Try again" loads it.
    const box = el("span", { class: "evidence-request" });
    const note = el("span", { class: "error" }, "Không xem được ảnh (404): chưa tải lên / Image not uploaded yet");
    note.title = detail;
    const ask = el("button", { type: "button" }, "Yêu cầu tải ảnh / Request from the agent");
    const status = el("span", { class: "hint", role: "status" });
    const retry = el("button", { type: "button", hidden: "" }, "Xem lại / Try again");
    ask.addEventListener("click", async () => {
      ask.disabled = true;
      const [path, query] = img.dataset.src.split("?");
      const response = await fetch(`${path}/request?${query}`, {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken() },
      });
      if (!response.ok) {
        status.textContent = messageFor(response.status, await detailOf(response));
        status.className = "error";
        ask.disabled = false;
        return;
      }
      const answer = await response.json();
      status.textContent = answer.message;
      retry.hidden = false;
      if (answer.state === "uploaded") retry.click();
    });
    retry.addEventListener("click", async () => {
      box.remove();
      await loadEvidence(img);
    });
    box.append(note, ask, status, retry);
    return box;
  }

  function openViewer(img, record) {
    const dialog = $("viewer");
    $("viewer-caption").textContent = `${record.plate} · ${formatTime(record.time)} · ${record.source_id}`;
    if (img.dataset.loaded) {
      $("viewer-image").src = img.src;
      showError($("viewer-error"), "");
    } else {
      showError($("viewer-error"), "Ảnh chưa tải xong. / The image has not loaded yet.");
    }
    dialog.showModal();
  }

  // ---- wiring -----------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    const now = new Date();
    $("until").value = vietnamInputValue(now);
    $("since").value = vietnamInputValue(new Date(now.getTime() - 7 * 24 * 3600 * 1000));
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("search-form").addEventListener("submit", search);
    for (const id of ["plate", "case-number", "note", "since", "until"]) {
      $(id).addEventListener("input", refreshForm);
    }
    refreshForm();
    restoreSession();
  });
})();
