// Browser code shared by central's pages: safe DOM helpers, the error texts, the session (sign-in with
// password + TOTP, the CSRF header, sign-out), the JSON API client and the page shell (header, navigation,
// sign-in form) of the operator pages. Plain JavaScript, no build step, no CDN.
// Every value from the server goes into the page as text (textContent / SVG text), never as HTML.
"use strict";

window.IOC = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  let csrfFromLogin = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, text = null) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attrs = {}, text = null) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== null) node.textContent = text;
    return node;
  }

  function csrfToken() {
    // The session's double-submit token: the ioc_csrf cookie (readable by this page, unlike the session
    // cookie), so a reload keeps working; the login answer's copy covers a browser that hides it.
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("ioc_csrf="));
    return cookie ? decodeURIComponent(cookie.slice("ioc_csrf=".length)) : csrfFromLogin || "";
  }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }

  async function detailOf(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) {
        return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
      }
    } catch (_) { /* not JSON */ }
    return response.statusText;
  }

  const KNOWN_STATUS = {
    401: "Phiên đăng nhập đã hết hạn hoặc chưa đăng nhập. Vui lòng đăng nhập lại. / Session expired or not logged in.",
    403: "Tài khoản này không có quyền thực hiện việc này. / This account may not do this.",
    413: "Dữ liệu gửi lên quá lớn. / The upload is too large.",
    422: "Yêu cầu chưa hợp lệ / Invalid request",
    500: "Lỗi máy chủ. / Server error.",
    503: "Máy chủ tạm thời không sẵn sàng, thử lại sau. / Service unavailable, try again later.",
  };

  function messageFor(status, detail, overrides = {}) {
    // The page's own wording for a status wins over the shared one (e.g. police: "police role needed").
    const base = overrides[status] || KNOWN_STATUS[status] || `Lỗi ${status} / Error ${status}`;
    return detail && status !== 401 ? `${base}: ${detail}` : base;
  }

  const UNREACHABLE = "Không kết nối được máy chủ. / Cannot reach the server.";

  // ---- updating in place: a refresh changes only what changed, so keyboard focus, opened widgets and
  // screen readers' live regions survive it (the map and health pages refresh every few seconds) ----------
  function setText(node, text) {
    // Write a (live region's) text only when it changes, so screen readers do not hear it again.
    if (node.textContent !== text) node.textContent = text;
  }

  function morph(old, fresh) {
    // Make ``old`` look like ``fresh`` touching only what differs: an element of the same tag is kept (with its
    // focus and listeners) and its attributes and children are brought in line; returns the node now in place.
    if (old.isEqualNode(fresh)) return old;
    if (old.nodeType === Node.TEXT_NODE && fresh.nodeType === Node.TEXT_NODE) {
      old.data = fresh.data;
      return old;
    }
    if (old.nodeType !== Node.ELEMENT_NODE || old.nodeName !== fresh.nodeName) {
      old.replaceWith(fresh);
      return fresh;
    }
    for (const { name } of [...old.attributes]) if (!fresh.hasAttribute(name)) old.removeAttribute(name);
    for (const { name, value } of [...fresh.attributes]) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
    morphChildren(old, [...fresh.childNodes]);
    return old;
  }

  function morphChildren(parent, freshNodes) {
    const olds = [...parent.childNodes];
    freshNodes.forEach((fresh, i) => { if (i < olds.length) morph(olds[i], fresh); else parent.append(fresh); });
    for (const extra of olds.slice(freshNodes.length)) extra.remove();
  }

  function reconcile(parent, olds, fresh, keyOf, first) {
    // ``olds`` (keyed children of ``parent``) become ``fresh`` in that order: a child with the key of one already
    // there is kept and changed in place, new ones are added, the others removed; ``first()`` is where the keyed
    // children start. Returns the children now in place.
    const byKey = new Map(olds.map((node) => [keyOf(node), node]));
    const nodes = fresh.map((node) => {
      const old = byKey.get(keyOf(node));
      return old ? morph(old, node) : node;
    });
    const keep = new Set(nodes);
    for (const old of olds) if (!keep.has(old)) old.remove();
    let next = first();
    for (const node of nodes) {
      if (node === next) next = node.nextSibling;
      else parent.insertBefore(node, next);
    }
    return nodes;
  }

  class ApiError extends Error {
    // A failed API call: .status (0 when the network failed) and a bilingual .message for the page.
    constructor(status, message) {
      super(message);
      this.name = "ApiError";
      this.status = status;
    }
  }

  async function signIn(username, password, totp, overrides = {}) {
    // { ok: true, username, roles } or { ok: false, message } (a network failure too: never a rejection).
    const body = { username, password };
    if (totp) body.totp = totp;
    let response;
    try {
      response = await fetch("/api/v1/auth/login", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch (_) {
      return { ok: false, message: UNREACHABLE };
    }
    if (!response.ok) {
      const detail = await detailOf(response);
      return {
        ok: false,
        message: response.status === 401
          ? `Sai tên đăng nhập, mật khẩu hoặc mã OTP. / Wrong username, password or code. (${detail})`
          : messageFor(response.status, detail, overrides),
      };
    }
    const answer = await response.json();
    csrfFromLogin = answer.csrf_token || null;
    return { ok: true, username, roles: answer.roles || [] };
  }

  async function signOut() {
    // Rejects (ApiError, status 0) only when the server cannot be reached; the caller decides what to show.
    try {
      await fetch("/api/v1/auth/logout", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken() },
      });
    } catch (_) {
      throw new ApiError(0, UNREACHABLE);
    } finally {
      csrfFromLogin = null;
    }
  }

  async function currentUser() {
    // The signed-in user ({ username, roles, ... }) of this browser's session cookie; null only when the server
    // says there is no session (401). Anything else (server unreachable: status 0, 503, ...) rejects with an
    // ApiError, so a page can say the server is unavailable instead of offering a sign-in that cannot work.
    let response;
    try {
      response = await fetch("/api/v1/auth/me", { credentials: "same-origin" });
    } catch (_) {
      throw new ApiError(0, UNREACHABLE);
    }
    if (response.status === 401) return null;
    if (!response.ok) throw new ApiError(response.status, messageFor(response.status, await detailOf(response)));
    try {
      return await response.json();
    } catch (_) {
      throw new ApiError(response.status, messageFor(500, ""));
    }
  }

  async function api(path, options = {}) {
    // fetch with this session: same-origin cookies, the CSRF header on unsafe methods, JSON in and out.
    // options.json: a value sent as the JSON body; options.raw: return the Response itself (CSV, images).
    const method = (options.method || (options.json !== undefined ? "POST" : "GET")).toUpperCase();
    const headers = Object.assign({}, options.headers || {});
    let body = options.body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    if (!["GET", "HEAD", "OPTIONS"].includes(method)) headers["X-CSRF-Token"] = csrfToken();
    let response;
    try {
      response = await fetch(path, { method, headers, body, credentials: "same-origin", signal: options.signal });
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new ApiError(0, UNREACHABLE);
    }
    if (!response.ok) {
      const detail = await detailOf(response);
      if (response.status === 401) unauthorized();
      throw new ApiError(response.status, messageFor(response.status, detail, options.statusMessages || {}));
    }
    if (options.raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }

  // Alert severities as every page names and colours them (most severe first; rank orders them).
  const SEVERITY = Object.freeze({
    critical: { vi: "Nghiêm trọng", en: "Critical", chip: "bad", rank: 3 },
    warning: { vi: "Cảnh báo", en: "Warning", chip: "warn", rank: 2 },
    notice: { vi: "Thông báo", en: "Notice", chip: "muted", rank: 1 },
  });

  // A camera's or sensor's state as every page names and marks it (colour is never the only cue: a symbol too);
  // rank orders the worst first when sorting (never heard sits between live and stalled).
  const SOURCE_STATES = Object.freeze({
    live: { vi: "Hoạt động", en: "Live", symbol: "✓", chip: "ok", rank: 0 },
    stalled: { vi: "Gián đoạn", en: "Stalled", symbol: "!", chip: "warn", rank: 2 },
    down: { vi: "Mất kết nối", en: "Down", symbol: "✕", chip: "bad", rank: 3 },
    unknown: { vi: "Chưa rõ", en: "Unknown", symbol: "?", chip: "muted", rank: 1 },
  });

  // The event contract's vehicle classes, [Vietnamese, English], in the order tables and legends list them.
  const VEHICLE_CLASSES = Object.freeze({
    motorbike: ["Xe máy", "Motorbike"], bicycle: ["Xe đạp", "Bicycle"], car: ["Ô tô con", "Car"],
    van: ["Xe van", "Van"], bus: ["Xe buýt", "Bus"], truck: ["Xe tải", "Truck"],
    three_wheeler: ["Xe ba bánh", "Three-wheeler"], other_vehicle: ["Phương tiện khác", "Other vehicle"],
  });

  function vehicleClass(name) {
    // "Xe máy / Motorbike" for a contract class; the raw name for anything else; "—" for none.
    if (!name) return "—";
    const names = VEHICLE_CLASSES[name];
    return names ? `${names[0]} / ${names[1]}` : name;
  }

  const TIME_ZONE = "Asia/Ho_Chi_Minh";
  const timeFormat = new Intl.DateTimeFormat("vi-VN", {
    timeZone: TIME_ZONE, day: "2-digit", month: "2-digit", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function fmtTime(iso) {
    // dd/mm/yyyy HH:MM:SS in Vietnam's time, "—" for no value.
    if (!iso) return "—";
    const date = iso instanceof Date ? iso : new Date(iso);
    if (Number.isNaN(date.getTime())) return "—";
    const parts = Object.fromEntries(timeFormat.formatToParts(date).map((p) => [p.type, p.value]));
    return `${parts.day}/${parts.month}/${parts.year} ${parts.hour}:${parts.minute}:${parts.second}`;
  }

  function fmtNumber(value, digits = 0) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
    return Number(value).toLocaleString("vi-VN", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // The operator pages, their Vietnamese / English names and the roles that may open them (the API checks
  // every request; the navigation only hides what the user could not use).
  const ALL_ROLES = ["operator", "police", "project_unit", "technician", "admin", "auditor"];
  const PAGES = [
    { key: "summary", href: "/", vi: "Tổng quan", en: "Overview", roles: ALL_ROLES },
    { key: "map", href: "/map", vi: "Bản đồ", en: "Map", roles: ALL_ROLES },
    { key: "live", href: "/live", vi: "Xem trực tiếp", en: "Live view", roles: ["operator", "technician", "project_unit", "admin"] },
    { key: "alerts", href: "/alerts", vi: "Cảnh báo", en: "Alerts", roles: ["operator", "technician", "police", "project_unit", "admin"] },
    { key: "traffic", href: "/traffic", vi: "Giao thông", en: "Traffic", roles: ["operator", "police", "technician", "admin"] },
    { key: "sensors", href: "/sensors", vi: "Cảm biến", en: "Sensors", roles: ["operator", "technician", "admin"] },
    { key: "health", href: "/health", vi: "Tình trạng thiết bị", en: "Agent health", roles: ["operator", "technician", "admin"] },
    { key: "police", href: "/police", vi: "Tra cứu biển số", en: "Plate search", roles: ["police"] },
    { key: "projects", href: "/projects", vi: "Dự án", en: "Projects", roles: ["operator", "project_unit", "admin"] },
  ];

  function bilingual(tag, vi, en, attrs = {}) {
    const node = el(tag, attrs, vi);
    node.append(" ", el("span", { class: "en" }, `/ ${en}`));
    return node;
  }

  function renderHeader(header, current, me) {
    header.replaceChildren();
    const page = PAGES.find((p) => p.key === current);
    const top = el("div", { class: "ioc-top" });
    top.append(el("span", { class: "ioc-brand" }, "IOC"));
    if (page) top.append(bilingual("h1", page.vi, page.en));
    if (me) {
      const who = el("div", { class: "ioc-who" });
      const areas = me.areas && me.areas.length ? me.areas.join("; ") : "toàn tỉnh / whole province";
      who.append(el("span", { id: "ioc-who-name" }, `${me.display_name || me.username}`),
        el("span", { class: "ioc-who-area", title: "Khu vực / Area" }, areas));
      const out = bilingual("button", "Đăng xuất", "Sign out", { type: "button", id: "ioc-sign-out", class: "secondary" });
      out.addEventListener("click", async () => {
        out.disabled = true;
        try {
          await signOut();
        } catch (_) {
          /* unreachable: the reload below then shows the shell's "server unavailable" panel, not a dead button */
        } finally {
          window.location.reload();
        }
      });
      who.append(out);
      top.append(who);
    }
    header.append(top);
    if (!me) return;
    const roles = new Set(me.roles || []);
    const nav = el("nav", { "aria-label": "Trang / Pages", class: "ioc-nav" });
    const list = el("ul");
    for (const p of PAGES) {
      if (!p.roles.some((r) => roles.has(r))) continue;
      const link = el("a", { href: p.href }, p.vi);
      link.append(el("span", { class: "en" }, ` / ${p.en}`));
      if (p.key === current) link.setAttribute("aria-current", "page");
      const item = el("li");
      item.append(link);
      list.append(item);
    }
    nav.append(list);
    header.append(nav);
  }

  function signInForm(onSignedIn, notice = "") {
    // notice: why the form is shown again (the session expired while the page was open), read out first.
    const section = el("section", { id: "ioc-login", class: "ioc-login", "aria-labelledby": "ioc-login-title" });
    section.append(bilingual("h2", "Đăng nhập", "Sign in", { id: "ioc-login-title" }));
    if (notice) section.append(el("p", { id: "ioc-login-notice", class: "ioc-notice", role: "alert" }, notice));
    const form = el("form", { id: "ioc-login-form", autocomplete: "off" });
    const field = (id, vi, en, attrs) => {
      const label = el("label", { for: id }, vi);
      label.append(el("span", { class: "en" }, ` / ${en}`));
      const input = el("input", Object.assign({ id, name: id }, attrs));
      const row = el("div", { class: "ioc-field" });
      row.append(label, input);
      return row;
    };
    form.append(
      field("ioc-login-username", "Tên đăng nhập", "Username", { required: "", autocomplete: "username" }),
      field("ioc-login-password", "Mật khẩu", "Password", { type: "password", required: "", autocomplete: "current-password" }),
      field("ioc-login-totp", "Mã xác thực 6 số (quản trị, cảnh sát)", "6-digit authenticator code (admin, police)",
        { inputmode: "numeric", pattern: "[0-9]{6}", maxlength: "6", autocomplete: "one-time-code" }),
    );
    const button = bilingual("button", "Đăng nhập", "Sign in", { type: "submit", id: "ioc-login-button" });
    const error = el("p", { id: "ioc-login-error", class: "error", role: "alert", hidden: "" });
    form.append(button, error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      const result = await signIn(
        $("ioc-login-username").value.trim(), $("ioc-login-password").value, $("ioc-login-totp").value.trim());
      button.disabled = false;
      $("ioc-login-password").value = "";
      $("ioc-login-totp").value = "";
      if (!result.ok) { showError(error, result.message); return; }
      showError(error, "");
      await onSignedIn();
    });
    section.append(form);
    return section;
  }

  function showUnavailable(error, retry) {
    // The server could not say whether there is a session (unreachable, 503, ...): say so, with a retry
    // button, instead of a blank page or a sign-in form that cannot work. Updated in place on a failed retry,
    // so the keyboard focus stays on the button.
    // The time of the try makes a retry that failed the same way visible (and read out) as a new answer.
    const message = `${(error && error.message) || UNREACHABLE} (${fmtTime(new Date())})`;
    let panel = $("ioc-unavailable");
    if (!panel) {
      panel = el("section", { id: "ioc-unavailable", class: "ioc-login", "aria-labelledby": "ioc-unavailable-title" });
      panel.append(bilingual("h2", "Chưa mở được trang", "The page could not be opened", { id: "ioc-unavailable-title" }));
      panel.append(el("p", { id: "ioc-unavailable-message", class: "error", role: "alert" }));
      const button = bilingual("button", "Thử lại", "Try again", { type: "button", id: "ioc-retry" });
      let busy = false; // not .disabled: disabling the focused button would drop the keyboard focus
      button.addEventListener("click", async () => {
        if (busy) return;
        busy = true;
        button.setAttribute("aria-disabled", "true");
        try { await retry(); } finally { busy = false; button.removeAttribute("aria-disabled"); }
      });
      panel.append(button);
      $("app").before(panel);
      $("ioc-unavailable-message").textContent = message;
      $("ioc-retry").focus();
      return;
    }
    $("ioc-unavailable-message").textContent = message;
  }

  // The page shell's state, for unauthorized(): null on pages that do not use IOC.shell (police, projects).
  let shellState = null;
  let unauthorizedCheck = null; // the pending session check, so a burst of 401s / 4401s makes one
  let expired = false; // the "sign in again" form is up: later 401s have nothing more to do

  function askToSignInAgain() {
    expired = true;
    if (document.fullscreenElement && document.exitFullscreen) document.exitFullscreen().catch(() => {});
    const app = $("app");
    renderHeader($("ioc-header"), shellState.page, null);
    for (const id of ["ioc-login", "ioc-unavailable"]) { const old = $(id); if (old) old.remove(); }
    app.hidden = true;
    // After signing in the page starts over (reload): its loads failed, its streams closed, and the account
    // may be another one with other roles; what the page keeps in its address (filters, layout) stays.
    app.before(signInForm(async () => { window.location.reload(); }, KNOWN_STATUS[401]));
    $("ioc-login-username").focus();
  }

  function unauthorized() {
    // The server refused this session (an API call answered 401, a live video socket closed with 4401):
    // on a page with IOC.shell, hide the page and show the sign-in form again with why; on another page,
    // reload so its own start shows its sign-in. The session is asked about first (/api/v1/auth/me), so a
    // refusal that was not about the session cannot loop; only "no session" (401) acts. Resolves to true when
    // the user is asked to sign in.
    if (expired) return Promise.resolve(true);
    if (unauthorizedCheck) return unauthorizedCheck;
    unauthorizedCheck = (async () => {
      let me;
      try {
        me = await currentUser();
      } catch (_) {
        return false; // the server is unreachable or unwell: the page's own errors say so
      }
      if (me) return false;
      if (shellState && shellState.started) askToSignInAgain();
      else if (shellState) return true; // not started yet: the shell's own sign-in form is up
      else { expired = true; window.location.reload(); }
      return true;
    })().finally(() => { unauthorizedCheck = null; });
    return unauthorizedCheck;
  }

  function shell({ page, onReady }) {
    // Header + navigation for ``page``, a sign-in form while there is no session (a "server unavailable"
    // panel with a retry button when the server cannot say), then #app shown and onReady(me) called once
    // (me: {username, display_name, roles, areas}).
    const state = { page, started: false };
    shellState = state;
    const start = async () => {
      const header = $("ioc-header");
      const app = $("app");
      let me;
      try {
        me = await currentUser();
      } catch (error) {
        app.hidden = true;
        const old = $("ioc-login");
        if (old) old.remove();
        renderHeader(header, page, null);
        showUnavailable(error, start);
        return;
      }
      for (const id of ["ioc-login", "ioc-unavailable"]) { const old = $(id); if (old) old.remove(); }
      renderHeader(header, page, me);
      if (!me) {
        app.hidden = true;
        const form = signInForm(start);
        app.before(form);
        $("ioc-login-username").focus();
        return;
      }
      app.hidden = false;
      if (!state.started) {
        state.started = true;
        await onReady(me);
      }
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }

  return {
    $, el, svg, csrfToken, showError, detailOf, messageFor, signIn, signOut, currentUser,
    ApiError, api, fmtTime, fmtNumber, bilingual, shell, unauthorized, PAGES,
    setText, morph, morphChildren, reconcile, SEVERITY, SOURCE_STATES, VEHICLE_CLASSES, vehicleClass,
  };
})();
