// The PMU projects page: sign in, the list of projects with today's plan-vs-actual gap, and one project's
// S-curve (plan against actual), work packages, confirmation form (project_unit/admin), daily timelapse,
// working hours and the live view of its cameras. Plain browser JavaScript, no build step, no CDN; every value
// from the server goes into the page as text (textContent / SVG text), never as HTML.
"use strict";

(() => {
  const { $, el, svg, csrfToken, showError, detailOf, messageFor } = window.IOC;
  const DEFAULT_THRESHOLD = 10; // points behind plan that make "chậm tiến độ" (the alert rule's default)
  const DEFAULT_MIN_CONFIDENCE = 0.5; // below this an unconfirmed estimate only asks for confirmation
  const MAX_PHOTO_BYTES = 5 * 1024 * 1024;
  const PHOTO_TYPES = ["image/jpeg", "image/png"];
  const CONFIRM_ROLES = ["project_unit", "admin"];
  const PLAY_STEP_MS = 800;
  const METHODS = {
    camera_visual: "Camera (hình ảnh) / Camera (visual)", activity: "Hoạt động / Activity",
    manual: "Xác nhận thủ công / Manual", survey: "Khảo sát / Survey",
  };
  const STATUS = {
    on_track: ["đúng tiến độ / on schedule", "chip-ok"],
    behind: ["chậm tiến độ / behind schedule", "chip-behind"],
    needs_confirmation: ["cần xác nhận / needs confirmation", "chip-confirm"],
  };
  const dayFormat = new Intl.DateTimeFormat("vi-VN", {
    timeZone: "UTC", day: "2-digit", month: "2-digit", year: "numeric",
  });

  let roles = [];
  let current = null; // { id, name, threshold, minConfidence, entries: Map(packageId -> entry) }
  let timelapse = { cameras: [], timer: null };
  // Numbers each change of view (a project opened, the list, signed out): an answer that comes back for an
  // older view is dropped, so opening A then B never draws A's figures or starts A's cameras inside B, and
  // going back to the list before the cameras answer starts no stream on a hidden section.
  let view = 0;
  const newView = () => { view += 1; return view; };

  // ---- small helpers ----------------------------------------------------------------------------
  const todayVn = () => new Date(Date.now() + 7 * 3600 * 1000).toISOString().slice(0, 10);
  const dayNumber = (iso) => Date.UTC(+iso.slice(0, 4), +iso.slice(5, 7) - 1, +iso.slice(8, 10)) / 86400000;
  const formatDay = (iso) => dayFormat.format(new Date(dayNumber(iso) * 86400000));
  const pct = (value) => (value === null || value === undefined ? "—" : `${Number(value).toFixed(1)}%`);
  const points = (value) => (value === null || value === undefined
    ? "—" : `${Number(value).toFixed(1)} điểm / pts`);
  const first = (...values) => values.find((v) => v !== undefined && v !== null);
  const listOf = (body, key) => (Array.isArray(body) ? body : (body && body[key]) || []);

  async function getJson(path) {
    const response = await fetch(path, { credentials: "same-origin" });
    if (!response.ok) {
      const error = new Error(messageFor(response.status, await detailOf(response)));
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function vnDateOf(value) {
    // A "YYYY-MM-DD" day: dates as given, instants as the Vietnam (UTC+7) day they fall on.
    if (typeof value !== "string") return null;
    if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return value;
    return new Date(Date.parse(value) + 7 * 3600 * 1000).toISOString().slice(0, 10);
  }

  // ---- the API's answers, read in one place ------------------------------------------------------
  // Series items: plan points {date, planned_pct}; actual points {date|day|time, percent_complete|percent,
  // confidence, confirmed, calibrated, method}. Each package: {package_id, name, weight (a share of 1, the plan's
  // weights normalised), critical, planned, actual}.
  function plannedSeries(list) {
    return (list || [])
      .map((p) => ({ date: vnDateOf(first(p.date, p.day)), pct: Number(first(p.planned_pct, p.percent, p.pct)) }))
      .filter((p) => p.date && Number.isFinite(p.pct)).sort((a, b) => a.date.localeCompare(b.date));
  }

  function actualSeries(list) {
    return (list || []).map((p) => ({
      date: vnDateOf(first(p.date, p.day, p.time)),
      pct: Number(first(p.percent_complete, p.percent, p.actual_pct, p.pct)),
      confidence: Number(first(p.confidence, 0)),
      confirmed: Boolean(p.confirmed),
      calibrated: Boolean(p.calibrated),
      method: first(p.method, ""),
    })).filter((p) => p.date && Number.isFinite(p.pct)).sort((a, b) => a.date.localeCompare(b.date));
  }

  function readEntry(raw, fallbackId) {
    return {
      id: first(raw.package_id, fallbackId, ""),
      name: first(raw.name, raw.name_vi, raw.package_id, ""),
      weight: first(raw.weight) ?? null,
      critical: Boolean(raw.critical),
      planned: plannedSeries(first(raw.planned, raw.plan, raw.planned_series)),
      actual: actualSeries(first(raw.actual, raw.actual_series)),
    };
  }

  function readProgress(body) {
    const entries = new Map();
    const project = first(body.project, body.overall);
    if (project) entries.set("", { ...readEntry(project, ""), id: "" });
    for (const raw of listOf(first(body.packages, []), "packages")) {
      const entry = readEntry(raw, null);
      if (entry.id === "" && entries.has("")) continue;
      entries.set(entry.id, entry);
    }
    const whole = entries.get("");
    if (whole) whole.name = "Toàn dự án / Whole project";
    return {
      threshold: Number(first(body.threshold_points, body.threshold, DEFAULT_THRESHOLD)),
      minConfidence: Number(first(body.min_confidence, DEFAULT_MIN_CONFIDENCE)),
      name: [body.name_vi, body.name_en].filter(Boolean).join(" / "),
      entries,
    };
  }

  // ---- figures of a day ---------------------------------------------------------------------------
  function plannedAt(planned, day) {
    // Linear between plan points; 0 before the first, the last value after the last (as the alert rule).
    if (!planned.length || day < planned[0].date) return planned.length ? 0 : null;
    for (let i = 0; i + 1 < planned.length; i++) {
      const a = planned[i], b = planned[i + 1];
      if (a.date <= day && day < b.date) {
        const share = (dayNumber(day) - dayNumber(a.date)) / (dayNumber(b.date) - dayNumber(a.date));
        return a.pct + (b.pct - a.pct) * share;
      }
    }
    return planned[planned.length - 1].pct;
  }

  function actualAt(actual, day) {
    // The latest figure at or before the day; on the same day a confirmed one wins.
    let best = null;
    for (const p of actual) {
      if (p.date > day) continue;
      if (!best || p.date > best.date || (p.date === best.date && p.confirmed && !best.confirmed)) best = p;
    }
    return best;
  }

  function statusOf(gap, actual, threshold, minConfidence) {
    if (!actual || gap === null) return "needs_confirmation";
    if (gap <= threshold) return "on_track";
    return !actual.confirmed && actual.confidence < minConfidence ? "needs_confirmation" : "behind";
  }

  function chip(status) {
    const [text, css] = STATUS[status] || STATUS.needs_confirmation;
    return el("span", { class: `chip ${css}`, "data-status": status }, text);
  }

  // ---- session ----------------------------------------------------------------------------------
  function showLoggedIn(me) {
    roles = me.roles || [];
    $("who-name").textContent = `Người dùng / User: ${me.username} (${roles.join(", ")})`;
    $("who").hidden = false;
    $("login-section").hidden = true;
    $("confirm-section").hidden = !roles.some((r) => CONFIRM_ROLES.includes(r));
    const wanted = decodeURIComponent(location.hash.slice(1));
    if (wanted) openProject(wanted); else showList();
  }

  function showLoggedOut() {
    newView();
    roles = [];
    current = null;
    stopPlaying();
    closeLiveTiles();
    $("who").hidden = true;
    $("login-section").hidden = false;
    $("list-section").hidden = true;
    $("project-section").hidden = true;
  }

  function sessionEnded() {
    // An API call answered 401 (the session expired or was revoked): back to the sign-in form with a word on
    // why; the address keeps the project, which opens again after signing in.
    if (!$("login-section").hidden) return; // already signed out (several calls fail at once)
    showLoggedOut();
    showError($("login-error"),
      "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại. / Your session has expired; please sign in again.");
    $("login-username").focus();
  }

  async function login(event) {
    event.preventDefault();
    showError($("login-error"), "");
    const result = await window.IOC.signIn(
      $("login-username").value.trim(), $("login-password").value, $("login-totp").value.trim());
    if (!result.ok) { showError($("login-error"), result.message); return; }
    showError($("login-error"), "");
    $("login-password").value = "";
    $("login-totp").value = "";
    showLoggedIn(result);
  }

  async function logout() {
    try {
      await window.IOC.signOut(); // rejects only when the server cannot be reached: still signed in there
    } catch (error) {
      showError($($("project-section").hidden ? "list-error" : "project-error"), error.message || String(error));
      return;
    }
    history.replaceState(null, "", location.pathname);
    showLoggedOut();
  }

  function failed(error, node) {
    if (error.status === 401) { sessionEnded(); return; }
    showError(node, error.message || String(error));
  }

  function liveSessionEnded() {
    // A live tile closed with 4401: central's live proxy found no session (it ended while the page was open).
    // IOC.unauthorized() asks the server first, so a refusal that was not about the session changes nothing,
    // and on this page (no IOC.shell) reloads it: its start shows the sign-in form, and the address keeps the
    // project, which opens again after signing in. Without it (an older ioc.js), the page's own path.
    if (typeof window.IOC.unauthorized === "function") window.IOC.unauthorized();
    else sessionEnded();
  }

  // ---- the list ---------------------------------------------------------------------------------
  async function showList() {
    const mine = newView();
    stopPlaying();
    closeLiveTiles();
    current = null;
    $("project-section").hidden = true;
    $("list-section").hidden = false;
    showError($("list-error"), "");
    let body;
    try {
      body = await getJson("/api/v1/projects");
    } catch (error) {
      if (mine === view) failed(error, $("list-error"));
      return;
    }
    if (mine !== view) return;
    const projects = listOf(body, "projects");
    const tbody = $("projects").querySelector("tbody");
    tbody.replaceChildren();
    $("list-empty").hidden = projects.length > 0;
    for (const p of projects) {
      const id = p.project_id;
      const planned = first(p.planned_pct, p.planned) ?? null;
      const actual = first(p.actual_pct, p.actual) ?? null;
      const gap = first(p.gap_points, p.gap_pct, p.gap)
        ?? (planned !== null && actual !== null ? planned - actual : null);
      const figure = actual === null ? null : {
        confirmed: Boolean(p.confirmed) || p.basis === "confirmed", confidence: Number(first(p.confidence, 0)),
      };
      const status = first(p.status) ?? statusOf(gap, figure, Number(first(p.threshold_points, DEFAULT_THRESHOLD)),
        Number(first(p.min_confidence, DEFAULT_MIN_CONFIDENCE)));
      const row = el("tr", { "data-project": id });
      const name = [p.name_vi, p.name_en].filter(Boolean).join(" / ") || id;
      const open = el("button", { type: "button", class: "open" }, "Xem / Open");
      open.addEventListener("click", () => openProject(id));
      row.append(el("td", {}, `${name} (${id})`), el("td", { class: "num" }, pct(planned)),
        el("td", { class: "num" }, pct(actual)), el("td", { class: "num" }, points(gap)));
      const statusCell = el("td");
      statusCell.append(chip(status));
      const openCell = el("td");
      openCell.append(open);
      row.append(statusCell, openCell);
      tbody.append(row);
    }
  }

  // ---- one project --------------------------------------------------------------------------------
  async function openProject(id) {
    const mine = newView();
    stopPlaying();
    closeLiveTiles(); // the previous project's streams, whether or not it finished loading
    current = null;
    clearProject();
    history.replaceState(null, "", `#${encodeURIComponent(id)}`);
    $("list-section").hidden = true;
    $("project-section").hidden = false;
    showError($("project-error"), "");
    $("project-title").textContent = id;
    const base = `/api/v1/projects/${encodeURIComponent(id)}`;
    let progress;
    try {
      progress = readProgress(await getJson(`${base}/progress`));
    } catch (error) {
      if (mine === view) failed(error, $("project-error"));
      return;
    }
    if (mine !== view) return; // another project, the list or the sign-in form is shown now
    current = { id, base, ...progress };
    $("project-title").textContent = current.name ? `${current.name} (${id})` : id;
    fillPackageChoices();
    drawProgress();
    // The other views fail on their own: a missing timelapse does not hide the chart.
    const range = dateRange();
    const query = range ? `?start=${range[0]}&end=${range[1]}` : "";
    const ifStill = (show) => (body) => { if (mine === view) show(body); };
    const views = [
      getJson(`${base}/timelapse${query}`).then(ifStill(showTimelapse)),
      getJson(`${base}/activity${query}`).then(ifStill(showActivity)),
      getJson(`${base}/cameras`).then(ifStill(showLiveGrid)),
    ];
    for (const result of await Promise.allSettled(views)) {
      if (result.status === "rejected" && mine === view) failed(result.reason, $("project-error"));
    }
    if (mine === view) $("project-section").dataset.loaded = id; // the browser tests wait on it
  }

  function clearProject() {
    // Nothing of the previous project stays on screen while the next one loads.
    delete $("project-section").dataset.loaded;
    $("project-summary").replaceChildren();
    for (const id of ["curve-package", "confirm-package"]) $(id).replaceChildren();
    $("scurve").replaceChildren();
    for (const id of ["curve-table", "packages", "activity-table"]) $(id).querySelector("tbody").replaceChildren();
    timelapse.cameras = [];
    $("timelapse-camera").replaceChildren();
    $("timelapse-image").removeAttribute("src");
    $("timelapse-caption").textContent = "";
    $("timelapse").hidden = true;
    $("timelapse-empty").hidden = true;
    $("activity").replaceChildren();
    $("activity-empty").hidden = true;
    $("live-grid").replaceChildren();
    $("live-empty").hidden = true;
    $("confirm-result").textContent = "";
    showError($("confirm-error"), "");
  }

  function dateRange() {
    const days = [];
    for (const entry of current.entries.values()) {
      for (const p of [...entry.planned, ...entry.actual]) days.push(p.date);
    }
    if (!days.length) return null;
    days.sort();
    const today = todayVn();
    return [days[0], days[days.length - 1] > today ? days[days.length - 1] : today];
  }

  function fillPackageChoices() {
    for (const id of ["curve-package", "confirm-package"]) {
      const select = $(id);
      const previous = select.value;
      select.replaceChildren();
      for (const entry of current.entries.values()) {
        select.append(el("option", { value: entry.id }, entry.id ? `${entry.name} (${entry.id})` : entry.name));
      }
      if ([...select.options].some((o) => o.value === previous)) select.value = previous;
    }
  }

  function drawProgress() {
    if (!current) return; // still loading
    const entry = current.entries.get($("curve-package").value) || current.entries.values().next().value;
    if (!entry) return;
    const today = todayVn();
    drawSCurve($("scurve"), entry, today);
    fillCurveTable(entry);
    fillPackageTable(today);
    const whole = current.entries.get("");
    if (whole) {
      const planned = plannedAt(whole.planned, today), actual = actualAt(whole.actual, today);
      const gap = planned !== null && actual ? planned - actual.pct : null;
      const summary = $("project-summary");
      summary.replaceChildren(el("span", {}, `Hôm nay / Today ${formatDay(today)}: `
        + `kế hoạch / planned ${pct(planned)}, thực tế / actual ${pct(actual && actual.pct)}, `
        + `chênh lệch / gap ${points(gap)} `));
      summary.append(chip(statusOf(gap, actual, current.threshold, current.minConfidence)));
    }
  }

  // ---- the S-curve --------------------------------------------------------------------------------
  function drawSCurve(container, entry, today) {
    const width = Math.max(720, container.clientWidth || 900), height = 360;
    const left = 52, right = 20, top = 16, bottom = 44;
    const days = [...entry.planned, ...entry.actual].map((p) => dayNumber(p.date));
    days.push(dayNumber(today));
    const d0 = Math.min(...days), d1 = Math.max(Math.max(...days), d0 + 1);
    const x = (iso) => left + ((dayNumber(iso) - d0) / (d1 - d0)) * (width - left - right);
    const y = (v) => top + (1 - v / 100) * (height - top - bottom);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", id: "scurve-svg",
      "aria-label": `Đường cong S ${entry.name}: kế hoạch và thực tế / S-curve ${entry.name}: plan and actual`,
    });
    for (const v of [0, 25, 50, 75, 100]) {
      root.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
      root.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, `${v}%`));
    }
    const ticks = 6;
    for (let i = 0; i <= ticks; i++) {
      const d = d0 + ((d1 - d0) * i) / ticks;
      const iso = new Date(Math.round(d) * 86400000).toISOString().slice(0, 10);
      const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle"; // the edge labels stay inside
      root.append(svg("text", { x: x(iso), y: height - bottom + 18, "text-anchor": anchor }, formatDay(iso)));
    }
    root.append(svg("line", { x1: left, x2: width - right, y1: y(0), y2: y(0), class: "axis" }));
    if (entry.planned.length) {
      // The band a figure may lag the plan before "chậm tiến độ": plan down to plan - threshold.
      const upper = entry.planned.map((p) => `${x(p.date)},${y(p.pct)}`);
      const lower = entry.planned.slice().reverse()
        .map((p) => `${x(p.date)},${y(Math.max(0, p.pct - current.threshold))}`);
      root.append(svg("polygon", { points: [...upper, ...lower].join(" "), class: "band" }));
      root.append(svg("polyline", { points: upper.join(" "), class: "planned-line" }));
      for (const p of entry.planned) {
        const mark = svg("circle", { cx: x(p.date), cy: y(p.pct), r: 2, class: "planned-point" });
        mark.append(svg("title", {}, `Kế hoạch / Plan ${formatDay(p.date)}: ${pct(p.pct)}`));
        root.append(mark);
      }
    }
    if (entry.actual.length) {
      const line = entry.actual.map((p) => `${x(p.date)},${y(p.pct)}`).join(" ");
      root.append(svg("polyline", { points: line, class: "actual-line" }));
      for (const p of entry.actual) {
        const low = !p.confirmed && p.confidence < current.minConfidence;
        const css = p.confirmed ? "actual-point confirmed" : low ? "actual-point low-confidence" : "actual-point";
        const mark = svg("circle", {
          cx: x(p.date), cy: y(p.pct), r: p.confirmed ? 6 : 4, class: css, "data-date": p.date,
        });
        mark.append(svg("title", {}, `${formatDay(p.date)}: ${pct(p.pct)} · ${sourceText(p)}`));
        root.append(mark);
        if (p.confirmed) {
          root.append(svg("text", { x: x(p.date) + 8, y: y(p.pct) - 8, class: "confirmed-label" },
            "đã xác nhận / confirmed"));
        }
      }
    }
    root.append(svg("line", { x1: x(today), x2: x(today), y1: top, y2: height - bottom, class: "today-line" }));
    root.append(svg("text", { x: x(today) + 4, y: top + 10, class: "today-label" }, "Hôm nay / Today"));
    container.replaceChildren(root);
  }

  function sourceText(p) {
    const parts = [METHODS[p.method] || p.method || "—"];
    if (p.confirmed) parts.push("đã xác nhận / confirmed");
    else if (p.confidence < current.minConfidence) parts.push("độ tin cậy thấp / low confidence");
    if (p.calibrated) parts.push("hiệu chỉnh theo xác nhận / calibrated");
    return parts.join(", ");
  }

  function fillCurveTable(entry) {
    const byDay = new Map();
    for (const p of entry.planned) byDay.set(p.date, { planned: p.pct, actual: null });
    for (const p of entry.actual) {
      byDay.set(p.date, { planned: plannedAt(entry.planned, p.date), ...byDay.get(p.date), actual: p });
    }
    const tbody = $("curve-table").querySelector("tbody");
    tbody.replaceChildren();
    for (const day of [...byDay.keys()].sort()) {
      const { planned, actual } = byDay.get(day);
      tbody.append(rowOf([formatDay(day), pct(planned), pct(actual && actual.pct),
        actual ? `${Math.round(actual.confidence * 100)}%` : "—", actual ? sourceText(actual) : "—"]));
    }
  }

  function rowOf(cells, attrs = {}) {
    const row = el("tr", attrs);
    for (const text of cells) row.append(el("td", {}, text));
    return row;
  }

  function fillPackageTable(today) {
    const tbody = $("packages").querySelector("tbody");
    tbody.replaceChildren();
    for (const entry of current.entries.values()) {
      if (entry.id === "") continue;
      const planned = plannedAt(entry.planned, today), actual = actualAt(entry.actual, today);
      const gap = planned !== null && actual ? planned - actual.pct : null;
      tbody.append(rowOf([
        `${entry.name} (${entry.id})`, entry.weight === null ? "—" : pct(entry.weight * 100), pct(planned),
        pct(actual && actual.pct), points(gap), actual ? `${Math.round(actual.confidence * 100)}%` : "—",
        actual ? sourceText(actual) : "—", entry.critical ? "Có / Yes" : "Không / No",
      ], { "data-package": entry.id }));
    }
  }

  // ---- confirmation (PMU) -------------------------------------------------------------------------
  function readPhoto(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  async function confirmProgress(event) {
    event.preventDefault();
    const error = $("confirm-error"), result = $("confirm-result");
    showError(error, "");
    result.textContent = "";
    const project = current, mine = view; // the answers below belong to this project only
    if (!project) { showError(error, "Dự án đang tải. / The project is still loading."); return; }
    const note = $("confirm-note").value.trim();
    if (!note) { showError(error, "Cần nhập ghi chú. / A note is required."); return; }
    const body = {
      package_id: $("confirm-package").value, date: $("confirm-date").value,
      percent_complete: Number($("confirm-percent").value), note,
    };
    const file = $("confirm-photo").files[0];
    if (file) {
      if (!PHOTO_TYPES.includes(file.type)) {
        showError(error, "Ảnh phải là JPEG hoặc PNG. / The photo must be JPEG or PNG.");
        return;
      }
      if (file.size > MAX_PHOTO_BYTES) { showError(error, "Ảnh lớn hơn 5 MB. / The photo is over 5 MB."); return; }
      body.photo_base64 = await readPhoto(file);
      if (mine !== view) return;
    }
    $("confirm-button").disabled = true;
    try {
      const response = await fetch(`${project.base}/progress/confirm`, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() }, body: JSON.stringify(body),
      });
      if (!response.ok) {
        const message = messageFor(response.status, await detailOf(response));
        if (response.status === 401) { sessionEnded(); return; }
        if (mine === view) showError(error, message);
        return;
      }
      if (mine !== view) return; // stored; the page shows another project (or the list) now
      const entry = project.entries.get(body.package_id);
      result.textContent = `Đã lưu xác nhận / Confirmation stored: ${entry ? entry.name : body.package_id} `
        + `${formatDay(body.date)} ${pct(body.percent_complete)}`;
      $("confirm-note").value = "";
      $("confirm-photo").value = "";
      const progress = readProgress(await getJson(`${project.base}/progress`));
      if (mine !== view) return;
      current = { ...project, ...progress };
      $("curve-package").value = body.package_id;
      drawProgress();
    } catch (failure) {
      if (mine !== view) return;
      if (failure.status === 401) { sessionEnded(); return; }
      const reason = failure.message || failure;
      showError(error, `Không kết nối được máy chủ. / Cannot reach the server. (${reason})`);
    } finally {
      $("confirm-button").disabled = false;
    }
  }

  // ---- timelapse ----------------------------------------------------------------------------------
  function cameraName(c) {
    const id = first(c.source_id, c.camera_id, c.id, "");
    return c.name ? `${c.name} (${id})` : id;
  }

  function showTimelapse(body) {
    timelapse.cameras = listOf(body, "cameras").map((c) => ({
      label: cameraName(c),
      days: listOf(first(c.days, c.keyframes, []), "days")
        .map((d) => ({ date: vnDateOf(first(d.date, d.day)), sha256: d.sha256, uploaded: d.uploaded !== false }))
        .filter((d) => d.date).sort((a, b) => a.date.localeCompare(b.date)),
    })).filter((c) => c.days.length);
    const select = $("timelapse-camera");
    select.replaceChildren(...timelapse.cameras.map((c, i) => el("option", { value: String(i) }, c.label)));
    $("timelapse").hidden = timelapse.cameras.length === 0;
    $("timelapse-empty").hidden = timelapse.cameras.length > 0;
    if (timelapse.cameras.length) pickCamera();
  }

  function pickCamera() {
    const camera = timelapse.cameras[Number($("timelapse-camera").value) || 0];
    const slider = $("timelapse-day");
    slider.max = String(camera.days.length - 1);
    slider.value = String(camera.days.length - 1);
    showFrame();
  }

  function showFrame() {
    const camera = timelapse.cameras[Number($("timelapse-camera").value) || 0];
    if (!camera) return;
    const day = camera.days[Number($("timelapse-day").value)];
    const image = $("timelapse-image");
    const label = `${camera.label} · ${formatDay(day.date)}`;
    $("timelapse-day").setAttribute("aria-valuetext", formatDay(day.date));
    if (day.uploaded && day.sha256) {
      image.hidden = false;
      image.alt = `Ảnh công trường / Site keyframe ${label}`;
      image.src = `${current.base}/keyframes/${encodeURIComponent(day.sha256)}`;
      $("timelapse-caption").textContent = label;
    } else {
      image.hidden = true;
      image.removeAttribute("src");
      $("timelapse-caption").textContent = `${label}: ảnh chưa tải lên / keyframe not uploaded yet`;
    }
  }

  function togglePlay() {
    if (timelapse.timer) { stopPlaying(); return; }
    const slider = $("timelapse-day");
    if (Number(slider.value) >= Number(slider.max)) slider.value = "0";
    showFrame();
    $("timelapse-play").setAttribute("aria-pressed", "true");
    timelapse.timer = setInterval(() => {
      if (Number(slider.value) >= Number(slider.max)) { stopPlaying(); return; }
      slider.value = String(Number(slider.value) + 1);
      showFrame();
    }, PLAY_STEP_MS);
  }

  function stopPlaying() {
    if (timelapse.timer) clearInterval(timelapse.timer);
    timelapse.timer = null;
    $("timelapse-play").setAttribute("aria-pressed", "false");
  }

  // ---- activity -----------------------------------------------------------------------------------
  function activityRows(node, context = {}, out = []) {
    // Flattens the answer's nesting (cameras -> zones -> days, or flat rows) into one row per zone and day.
    if (Array.isArray(node)) { for (const item of node) activityRows(item, context, out); return out; }
    if (!node || typeof node !== "object") return out;
    const here = { ...context };
    for (const key of ["agent_id", "source_id", "camera_id", "camera_name", "name", "zone_id"]) {
      if (node[key] !== undefined) here[key] = node[key];
    }
    if (node.working_hours !== undefined && first(node.date, node.day)) {
      out.push({ ...here, date: vnDateOf(first(node.date, node.day)), hours: Number(node.working_hours),
        index: first(node.activity_index, node.mean_activity_index) ?? null });
      return out;
    }
    for (const value of Object.values(node)) if (value && typeof value === "object") activityRows(value, here, out);
    return out;
  }

  const zoneLabel = (r) => `${first(r.camera_name, r.name, r.source_id, r.camera_id, "")} / ${first(r.zone_id, "")}`;

  function showActivity(body) {
    const rows = activityRows(body).filter((r) => r.date && Number.isFinite(r.hours));
    const series = [...new Set(rows.map((r) => zoneLabel(r)))];
    const days = [...new Set(rows.map((r) => r.date))].sort();
    $("activity-empty").hidden = rows.length > 0;
    $("activity-block").hidden = rows.length === 0;
    const tbody = $("activity-table").querySelector("tbody");
    tbody.replaceChildren(...rows.slice().sort((a, b) => a.date.localeCompare(b.date)).map((r) => rowOf([
      formatDay(r.date), zoneLabel(r),
      `${r.hours.toFixed(1)} h`, r.index === null ? "—" : Number(r.index).toFixed(2)])));
    if (!rows.length) return;
    const width = Math.max(720, $("activity").clientWidth || 900), height = 240;
    const left = 44, right = 16, top = 12, bottom = 40;
    const maxHours = Math.max(1, ...rows.map((r) => r.hours));
    const slot = (width - left - right) / days.length, bar = Math.max(2, (slot * 0.8) / series.length);
    const y = (h) => top + (1 - h / maxHours) * (height - top - bottom);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", id: "activity-svg",
      "aria-label": "Giờ làm việc theo ngày / Working hours per day" });
    for (const h of [0, maxHours / 2, maxHours]) {
      root.append(svg("line", { x1: left, x2: width - right, y1: y(h), y2: y(h), class: "grid" }));
      root.append(svg("text", { x: left - 6, y: y(h) + 4, "text-anchor": "end" }, `${h.toFixed(1)} h`));
    }
    const every = Math.ceil(days.length / 10);
    days.forEach((day, i) => {
      if (i % every === 0) {
        const label = { x: left + slot * (i + 0.5), y: height - bottom + 16, "text-anchor": "middle" };
        root.append(svg("text", label, formatDay(day).slice(0, 5)));
      }
    });
    for (const r of rows) {
      const s = series.indexOf(zoneLabel(r));
      const bx = left + slot * days.indexOf(r.date) + slot * 0.1 + bar * s;
      const rect = svg("rect", { x: bx, y: y(r.hours), width: bar, height: y(0) - y(r.hours), class: `bar s${s % 6}` });
      rect.append(svg("title", {}, `${formatDay(r.date)} · ${series[s]}: ${r.hours.toFixed(1)} h`));
      root.append(rect);
    }
    $("activity").replaceChildren(root);
  }

  // ---- live view ----------------------------------------------------------------------------------
  // Each camera streams through central's live proxy (which checks the session and the area) and is drawn on a
  // canvas with the agent's detections, by the same tiles as /live (common/live_tile.js); the page never
  // loads a picture from the agent itself.
  let liveTiles = [];

  function placeholder(text) { return el("div", { class: "no-stream" }, text); }

  function closeLiveTiles() {
    for (const tile of liveTiles) tile.close();
    liveTiles = [];
  }

  function showLiveGrid(body) {
    closeLiveTiles();
    const cameras = listOf(body, "cameras");
    const grid = $("live-grid");
    grid.replaceChildren();
    $("live-empty").hidden = cameras.length > 0;
    for (const camera of cameras) {
      const figure = el("figure", { class: "live" });
      const agentId = first(camera.agent_id, ""), cameraId = first(camera.source_id, camera.camera_id, "");
      if (agentId && cameraId && camera.live) {
        const canvas = el("canvas", {
          width: "640", height: "360", role: "img", "aria-label": `Hình trực tiếp / Live view: ${cameraName(camera)}`,
        });
        const waiting = placeholder("Đang kết nối / Connecting");
        const status = el("span", { class: "chip live-status" });
        figure.append(canvas, waiting);
        const tile = new window.IOC_LIVE.LiveTile({
          agentId, cameraId, canvas,
          onState: (state, vi, en) => {
            figure.dataset.state = state;
            status.textContent = `${vi} / ${en}`;
            if (state === "down") {
              waiting.textContent = "Không kết nối được luồng trực tiếp / The live stream cannot be reached";
            } else if (state !== "live") waiting.textContent = `${vi} / ${en}`;
          },
          onFrame: () => { waiting.hidden = true; figure.dataset.frames = String(tile.stats.frames_drawn); },
          onUnauthorized: liveSessionEnded,
        });
        liveTiles.push(tile.start());
        const caption = el("figcaption", {}, `${cameraName(camera)} · `);
        caption.append(status);
        figure.append(caption);
      } else {
        figure.append(placeholder("Chưa có luồng trực tiếp / No live stream configured"));
        figure.append(el("figcaption", {}, cameraName(camera)));
      }
      grid.append(figure);
    }
  }

  function fullScreen() {
    const grid = $("live-grid");
    if (document.fullscreenElement) document.exitFullscreen();
    else if (grid.requestFullscreen) grid.requestFullscreen().catch(() => {});
  }

  // ---- wiring -------------------------------------------------------------------------------------
  function toggleTable(button, table) {
    const show = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(show));
    $(table).hidden = !show;
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("confirm-date").value = todayVn();
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("back").addEventListener("click", () => { history.replaceState(null, "", location.pathname); showList(); });
    $("curve-package").addEventListener("change", drawProgress);
    $("curve-table-toggle").addEventListener("click", (e) => toggleTable(e.currentTarget, "curve-table"));
    $("activity-table-toggle").addEventListener("click", (e) => toggleTable(e.currentTarget, "activity-table"));
    $("confirm-form").addEventListener("submit", confirmProgress);
    $("timelapse-camera").addEventListener("change", pickCamera);
    $("timelapse-day").addEventListener("input", showFrame);
    $("timelapse-play").addEventListener("click", togglePlay);
    $("live-fullscreen").addEventListener("click", fullScreen);
    window.IOC.currentUser().then((me) => (me ? showLoggedIn(me) : showLoggedOut()), (error) => {
      // The server cannot say whether there is a session (unreachable, 503): the form, with why.
      showLoggedOut();
      showError($("login-error"), error.message || String(error));
    });
  });
})();
